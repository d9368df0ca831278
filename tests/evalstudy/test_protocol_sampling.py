"""The protocol's optional sampling fields for outside models: size and scheduler."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalstudy.protocol import Protocol, ProtocolError

DEMO = Path(__file__).resolve().parents[2] / "fixtures" / "protocols" / "demo.json"


def demo() -> dict:
    return json.loads(DEMO.read_text())


def test_a_protocol_without_them_keeps_its_canonical_form_and_hash():
    doc = demo()
    proto = Protocol.from_dict(doc)
    assert "size" not in proto.to_dict()["sampling"] and "scheduler" not in proto.to_dict()["sampling"]
    doc["sampling"]["size"] = None
    assert Protocol.from_dict(doc).content_hash() == proto.content_hash()


def test_size_and_scheduler_round_trip_and_change_the_hash():
    doc = demo()
    doc["sampling"].update({"size": 512, "scheduler": "DDIMScheduler"})
    proto = Protocol.from_dict(doc)
    assert (proto.sampling.size, proto.sampling.scheduler) == (512, "DDIMScheduler")
    assert Protocol.from_dict(proto.to_dict()) == proto
    assert proto.content_hash() != Protocol.from_dict(demo()).content_hash()


@pytest.mark.parametrize("size", [0, 4, 4096, "512", 1.5])
def test_a_size_out_of_range_is_refused(size):
    doc = demo()
    doc["sampling"]["size"] = size
    with pytest.raises(ProtocolError, match="sampling.size"):
        Protocol.from_dict(doc)
