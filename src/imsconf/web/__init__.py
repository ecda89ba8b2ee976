"""The operator plane over HTTP: the API, metrics, health and the web console."""
