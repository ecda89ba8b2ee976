"""A SIP registrar (RFC 3261 §10, Path RFC 3327, Service-Route RFC 3608) for standalone deployments."""
