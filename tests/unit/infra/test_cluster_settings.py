"""Several machines (ARCHITECTURE "Running many, and running big"): a NATS cluster's URLs
in ``CALIB_NATS_URL``, the stream's replicas from ``CALIB_STREAM_REPLICAS``, and a MongoDB
replica set's URI passed through as it is."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from calib_infra.bus import calibration_stream, durable_consumer, stream_settings
from calib_infra.config import load_config
from calib_infra.mongo import mongo_client

CLUSTER = "nats://nats-0:4222, nats://nats-1:4222,tls://nats-2:4222"


def test_every_url_of_a_cluster_is_a_server_to_connect_to():
    config = load_config({"CALIB_NATS_URL": CLUSTER})
    assert config.nats_servers == ["nats://nats-0:4222", "nats://nats-1:4222", "tls://nats-2:4222"]
    assert load_config({}).nats_servers == ["nats://127.0.0.1:4222"]


@pytest.mark.parametrize("urls", ["nats-0:4222", "nats://a:4222,", "http://a:4222", "nats://"])
def test_a_url_list_with_something_else_than_a_nats_url_fails_naming_it(urls):
    with pytest.raises(msgspec.ValidationError, match="CALIB_NATS_URL: .* is not a NATS URL"):
        load_config({"CALIB_NATS_URL": urls})


def test_the_stream_has_one_replica_unless_told_and_its_consumers_inherit_them():
    assert stream_settings(load_config({}))["num_replicas"] == 1
    config = load_config({"CALIB_STREAM_REPLICAS": "3"})
    assert calibration_stream(config).config.num_replicas == 3
    consumer = durable_consumer("stacker", config)
    assert consumer["stream"].config.num_replicas == 3
    assert not consumer["config"].num_replicas  # 0/unset: the stream's


@pytest.mark.parametrize("replicas", ["0", "6", "-1", "three"])
def test_replicas_beyond_what_jetstream_keeps_fail_loudly(replicas):
    with pytest.raises(msgspec.ValidationError, match="stream_replicas"):
        load_config({"CALIB_STREAM_REPLICAS": replicas})


def test_a_replica_set_uri_reaches_the_client_unchanged():
    uri = "mongodb://db-0:27017,db-1:27017,db-2:27017/?replicaSet=rs0&w=majority"
    config = load_config({"CALIB_MONGODB_URI": uri})
    assert config.mongodb_uri == uri

    async def topology():
        client = mongo_client(config)
        try:
            return client.options.replica_set_name, client.topology_description
        finally:
            await client.close()

    name, description = asyncio.run(topology())
    assert name == "rs0"
    assert description.topology_type_name == "ReplicaSetNoPrimary"  # not Single: no direct link
    assert set(description.server_descriptions()) == {
        ("db-0", 27017),
        ("db-1", 27017),
        ("db-2", 27017),
    }
