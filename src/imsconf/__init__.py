"""imsconf: a secure conference server for IMS/SIP networks."""

__all__ = ["__version__"]
__version__ = "0.1.0"
