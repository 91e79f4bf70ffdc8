"""What to poll: configured and discovered instance/group pairs, and the catalog of instances."""
