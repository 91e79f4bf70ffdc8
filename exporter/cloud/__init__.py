"""Alibaba Cloud: signing, the HTTP client, error codes, rate limit, answer models, credentials, traffic."""
