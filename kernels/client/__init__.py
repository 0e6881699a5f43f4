"""The catalog's REST client, for kernels and the CLI: `HeadstartClient` and nothing heavier.

It imports httpx and the API schemas only, never Keras, so a notebook that browses is quick.
"""

from __future__ import annotations

from headstart.kernels.client.catalog import HeadstartClient

__all__ = ["HeadstartClient"]
