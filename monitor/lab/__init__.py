"""The lab: in-process DNS responders on loopback, for exact packets in tests and for the demo.

``responder`` serves a handler's replies (a message, raw bytes, silence, a delayed reply) over
UDP and TCP; ``world`` is the scripted handler that answers from a table of records.
"""

from monitor.lab.responder import (
    Delayed,
    Handler,
    Lab,
    QueryRecord,
    Reply,
    Request,
    Responder,
    encode,
    name_text,
)
from monitor.lab.world import Changes, Overrides, World

__all__ = [
    "Changes",
    "Delayed",
    "Handler",
    "Lab",
    "Overrides",
    "QueryRecord",
    "Reply",
    "Request",
    "Responder",
    "World",
    "encode",
    "name_text",
]
