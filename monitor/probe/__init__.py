"""The probe engine: the wire format, the transports, pacing, the bulk UDP pass, the engine.

- ``wire``: queries built and replies read by hand (the hot path), dnspython for the rest;
- ``matching``: a reply believed only for its query (ID and question), an attempt's outcomes;
- ``pacing``: a resolver's rate, in every one-second window;
- ``transport``: the interface of a single-query transport and the registry of transports,
  with ``stream`` (TCP, DoT) and ``doh`` behind it;
- ``bulk``: the UDP pass that carries a udp resolver's queries, a million at a time;
- ``engine``: a client per resolver, and the engine that routes each query to one;
- ``observation``: what every query ends as.
"""

from monitor.probe.engine import Engine, ResolverClient
from monitor.probe.observation import Observation
from monitor.probe.pacing import Pacer
from monitor.probe.transport import TRANSPORTS, Transport

__all__ = [
    "TRANSPORTS",
    "Engine",
    "Observation",
    "Pacer",
    "ResolverClient",
    "Transport",
]
