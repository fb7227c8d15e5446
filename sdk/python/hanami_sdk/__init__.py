"""Python SDK for the Hanami AI backend.

Import the modules you need explicitly, for example::

    from hanami_sdk import hanami_token, cluster, dataset, task

Every REST function takes ``token, address, ...`` and ends with ``verify_connection=True``;
it returns the server's JSON answer as text (use ``json.loads``) and raises one of the
exceptions of :mod:`hanami_sdk.hanami_exceptions` for HTTP errors.
"""

__version__ = "0.5.0"
__author__ = "Hanami-rs contributors"
