"""Loaded by every Python process a test starts with this folder on PYTHONPATH (the local stack's
moto server, worker and training processes): the request validator stays on there too, so a request
AWS would refuse fails the flow in a background process as it would in the test's own."""

import os

if os.environ.get("DATADROP_STRICT_REQUESTS") == "1":
    from tests import strict_requests

    strict_requests.install()
