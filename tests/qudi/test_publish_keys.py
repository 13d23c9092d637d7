"""The key options of a streamer and a buffer, in a real qudi: what activation refuses and says.

A stream published where other hosts can reach it needs CURVE keys (``publish_key`` and
``allowed_clients``) or an explicit ``insecure: True``, which is warned at every activation.
"""

from __future__ import annotations

import logging
import os

import pytest

from qudi.util.instream.keys import new_keys

DUMMY = "instream.dummy.InStreamDummy"
BUFFER = "instream.buffer.DataInStreamBuffer"
DUMMY_OPTIONS = {
    "channel_names": ["a", "b"],
    "channel_units": ["V", "V"],
    "channel_signals": ["ramp", "sine"],
}


def add_module(module_manager, base: str, kind: str, entry: dict) -> str:
    """Add a module under a fresh name (qudi-core 1.8 cannot remove modules cleanly)."""
    name = f"keys_{kind}_{len(module_manager.module_names)}"
    module_manager.add_module(name, base, entry)
    return name


def activation_fails(module_manager, name: str, expected_qudi_errors) -> str:
    with pytest.raises(RuntimeError, match="Failed to activate"):
        module_manager.activate_module(name)
    assert module_manager[name].instance.module_state() == "deactivated"
    return "\n".join(expected_qudi_errors())


@pytest.fixture
def key_files(tmp_path):
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    server_public, server_secret = new_keys("daq-pc", tmp_path)
    client_public, client_secret = new_keys("laptop", tmp_path)
    (allowed / client_public.name).write_bytes(client_public.read_bytes())
    return {
        "server_secret": str(server_secret),
        "server_public": str(server_public),
        "client_secret": str(client_secret),
        "allowed": str(allowed),
    }


def test_publishing_beyond_loopback_without_keys_fails_activation_saying_how_to_make_keys(
    module_manager, expected_qudi_errors
):
    options = {**DUMMY_OPTIONS, "publish_address": "tcp://0.0.0.0:*"}
    name = add_module(
        module_manager, "hardware", "dummy", {"module.Class": DUMMY, "options": options}
    )
    said = activation_fails(module_manager, name, expected_qudi_errors)
    assert "option 'publish_address' is 'tcp://0.0.0.0:*'" in said
    assert "python -m qudi.util.instream.keys new NAME" in said
    assert "'publish_key'" in said and "'allowed_clients'" in said and "insecure: True" in said


def test_insecure_publishing_is_warned_at_every_activation(module_manager, caplog):
    options = {**DUMMY_OPTIONS, "publish_address": "tcp://0.0.0.0:*", "insecure": True}
    name = add_module(
        module_manager, "hardware", "dummy", {"module.Class": DUMMY, "options": options}
    )
    with caplog.at_level(logging.WARNING):
        for _ in range(2):
            module_manager.activate_module(name)
            module_manager.deactivate_module(name)
    warned = [r for r in caplog.records if "WITHOUT authentication" in r.getMessage()]
    assert len(warned) == 2


def test_publishing_with_keys_beyond_loopback_activates(module_manager, key_files):
    options = {
        **DUMMY_OPTIONS,
        "publish_address": "tcp://0.0.0.0:*",
        "publish_key": key_files["server_secret"],
        "allowed_clients": key_files["allowed"],
    }
    name = add_module(
        module_manager, "hardware", "dummy", {"module.Class": DUMMY, "options": options}
    )
    module_manager.activate_module(name)
    share = module_manager[name].instance.share_stream("someone")
    try:
        assert share.publish_security().startswith("curve ")
    finally:
        share.close()
    module_manager.deactivate_module(name)


@pytest.mark.parametrize(
    ("options", "said"),
    [
        ({"publish_key": "server_secret"}, "option 'publish_key' is set but 'allowed_clients'"),
        ({"allowed_clients": "allowed"}, "option 'allowed_clients' is set but 'publish_key'"),
        (
            {"publish_key": "server_public", "allowed_clients": "allowed"},
            "option 'publish_key'",  # a public key file where the secret one belongs
        ),
        ({"publish_key": "server_secret", "allowed_clients": "server_secret"}, "not a folder"),
        ({"insecure": "yes"}, "option 'insecure' is 'yes': use True or False"),
    ],
)
def test_wrong_key_options_fail_activation_naming_them(
    module_manager, expected_qudi_errors, key_files, options, said
):
    options = {key: key_files.get(value, value) for key, value in options.items()}
    entry = {"module.Class": DUMMY, "options": {**DUMMY_OPTIONS, **options}}
    name = add_module(module_manager, "hardware", "dummy", entry)
    assert said in activation_fails(module_manager, name, expected_qudi_errors)


def test_a_buffer_with_half_its_keys_or_a_readable_secret_fails_activation(
    module_manager, expected_qudi_errors, key_files
):
    dummy = add_module(
        module_manager, "hardware", "dummy", {"module.Class": DUMMY, "options": DUMMY_OPTIONS}
    )
    half = {"subscribe_key": key_files["client_secret"]}
    name = add_module(
        module_manager,
        "hardware",
        "buffer",
        {"module.Class": BUFFER, "options": half, "connect": {"streamer": dummy}},
    )
    assert "option 'subscribe_key' is set but 'publisher_key'" in activation_fails(
        module_manager, name, expected_qudi_errors
    )
    os.chmod(key_files["client_secret"], 0o640)
    both = {**half, "publisher_key": key_files["server_public"]}
    name = add_module(
        module_manager,
        "hardware",
        "buffer",
        {"module.Class": BUFFER, "options": both, "connect": {"streamer": dummy}},
    )
    assert "chmod 600" in activation_fails(module_manager, name, expected_qudi_errors)
