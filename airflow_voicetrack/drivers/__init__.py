"""
The drivers: they run the flows of :mod:`airflow_voicetrack.protocol` over the network.

A flow yields what it needs (send this request, sleep, give me a token, run these flows at once)
and a driver performs it. There are two, written as twins so that a reader sees the pair:

- :mod:`~.sync`: ``requests`` from a thread pool (the sync hook, the operator, the sensor, the probe);
- :mod:`~.asyncio`: ``httpx`` from asyncio tasks (the async hook, the triggers), with one access
  token per connection shared by every hook in an event loop.

Each holds its transport (one request over its library, held to ``request_deadline``, with its
errors mapped to a :class:`~airflow_voicetrack.protocol.TransportFailure`) and its token cache. The
decisions (retry, refresh the token, fail) are all the protocol's. Drivers register every new
access token with Airflow's secrets masker.
"""
