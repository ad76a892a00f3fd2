"""A local stand-in for the OpenAI Images API, to rehearse runs and test failure handling without paying:
real images, latency, an images-per-minute limit, injected faults and per-product request counts.
"""

from catalog_assets.standin.config import CURRENT_MODELS, EARLIER_ATTEMPT_FAULTS, FAULT_KINDS, StandInConfig
from catalog_assets.standin.control import StandInClient, StandInProcess, StandInServer, running_standin
from catalog_assets.standin.state import format_duration, parse_client_request_id

__all__ = [
    "CURRENT_MODELS",
    "EARLIER_ATTEMPT_FAULTS",
    "FAULT_KINDS",
    "StandInClient",
    "StandInConfig",
    "StandInProcess",
    "StandInServer",
    "format_duration",
    "parse_client_request_id",
    "running_standin",
]
