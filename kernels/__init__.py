"""headstart's bottom layer: the engine, the API schemas and the client.

It imports neither extension nor widgets.
"""
