"""An STS answer's RequestId goes into a one-line error: a hostile one's control characters do not."""

from __future__ import annotations

import json

import pytest

from exporter.cloud.credentials_remote import RemoteCredentialsError, sts_credentials


@pytest.mark.parametrize("request_id", ["\n", "R-1\nlevel=error msg=forged", "\x1b[31mR\r"])
def test_a_request_id_with_control_characters_stays_on_one_line(request_id: str) -> None:
    for status in (200, 400):
        with pytest.raises(RemoteCredentialsError) as failed:
            sts_credentials(status, json.dumps({"RequestId": request_id, "Code": "X"}).encode(), "STS", "token")
        text = str(failed.value)
        assert text.isprintable(), text
