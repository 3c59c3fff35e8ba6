"""The declarative `http` connector: a new REST tool is configuration, not code.

- `templates`: JSON templates in Jinja2's immutable sandbox;
- `spec`: the options, checked and compiled at start-up;
- `oauth`: client-credentials and refresh-token flows with a token cache;
- `connector`: `HttpConnector`, which renders, sends, classifies and maps results back.
"""

from __future__ import annotations

from switchboard.server.connectors.http.connector import HttpConnector

__all__ = ["HttpConnector"]
