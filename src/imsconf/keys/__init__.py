"""imsconf.keys: the key authority (SRTP master keys made at the AS)."""
