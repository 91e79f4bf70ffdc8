"""HTTP serving: routes and handlers, the status page, the listening server's limits, TLS and basic auth."""
