"""vahini-client: call Vahini's FeatureService, InteractionService and ModelProxy.

    from vahini_client import VahiniClient

    with VahiniClient("127.0.0.1:50051", timeout_s=0.2) as client:
        features = client.get_features("home_ranker", user_id="u42", product_ids=["p1", "p2"])
        features.matrix            # float32 numpy, rows x columns
"""

from vahini_client.client import NO_RETRIES, RetryPolicy, VahiniClient
from vahini_client.results import (
    STATUS_NAMES, Features, GroupValues, History, Interaction, ModelFeatures, SearchHits,
)

__all__ = ["VahiniClient", "RetryPolicy", "NO_RETRIES", "Features", "GroupValues", "History", "Interaction",
           "ModelFeatures", "SearchHits", "STATUS_NAMES", "protos_match"]


def protos_match(client: VahiniClient, timeout_s: float = 5.0) -> list[str]:
    """The proto files on which this client and the server at `client.target` disagree
    (empty: they agree). Needs `pip install 'vahini-client[check]'`."""
    from vahini_client.compat import mismatches, server_files

    return mismatches(server_files(client._channel, timeout_s))
