"""Fixtures shared by the test modules."""

import pytest
from browser import launch


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    """A headless Chromium (see ``browser.py``), one per test module."""
    d = launch(tmp_path_factory.mktemp("chromium-profile"))
    yield d
    d.quit()
