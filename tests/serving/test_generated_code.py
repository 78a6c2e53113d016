from vahini.serving.api.generate import stale_files


def test_checked_in_grpc_code_matches_the_proto():
    assert stale_files() == [], "run `make proto` and commit serving/api"
