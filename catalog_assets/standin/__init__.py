"""A local stand-in for the OpenAI API, to rehearse runs and test failure handling without paying: the
Images API (real images, latency, an images-per-minute limit, injected faults, per-product request counts),
the Files and Batches API, the Responses API as an image reviewer and the Embeddings API.
"""

from catalog_assets.standin.config import (
    BATCH_ENDPOINTS,
    BATCH_LINE_FAULTS,
    CURRENT_MODELS,
    EARLIER_ATTEMPT_FAULTS,
    EMBEDDING_MODELS,
    FAULT_KINDS,
    RESPONSES_MODELS,
    StandInConfig,
)
from catalog_assets.standin.control import StandInClient, StandInProcess, StandInServer, running_standin
from catalog_assets.standin.state import format_duration, parse_client_request_id, product_of_custom_id

__all__ = [
    "BATCH_ENDPOINTS",
    "BATCH_LINE_FAULTS",
    "EMBEDDING_MODELS",
    "RESPONSES_MODELS",
    "product_of_custom_id",
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
