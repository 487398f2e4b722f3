import pytest


@pytest.fixture()
def no_data(tmp_path):
    """A data dir without any task: a report given it has no floor row and never looks
    for the tasks on the hub. (HF_HUB_OFFLINE, tests/conftest.py, is read when
    huggingface_hub is first imported; after a test that imported it online, each hub
    lookup waited ~47 s for an unreachable endpoint: five reports cost 4 minutes of CI.)"""
    folder = tmp_path / "no-task-data"
    folder.mkdir()
    return folder
