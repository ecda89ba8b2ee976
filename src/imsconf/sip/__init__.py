"""imsconf.sip"""
