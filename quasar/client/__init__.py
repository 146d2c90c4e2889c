"""The client of ``quasar serve``: :class:`ServiceClient` scores files through a running service with the
same records as local scoring (``quasar score --url``). Standard library HTTP only.

* :mod:`quasar.client.transport`: requests, retries with backoff honouring ``Retry-After``, bearer token;
* :mod:`quasar.client.multipart`: the ``multipart/form-data`` body of several files;
* :mod:`quasar.client.service`: :class:`ServiceClient`, batching paths into requests, answers into records.
"""

from quasar.client.service import ServiceClient, ServiceInfo

__all__ = ["ServiceClient", "ServiceInfo"]
