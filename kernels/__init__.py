"""headstart's bottom layer: the engine, the REST schemas and the client. Imports neither extension nor widgets."""
