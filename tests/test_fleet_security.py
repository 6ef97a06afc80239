"""The fleet broker's security, against a real Mosquitto: who may publish and read which topic, passwords,
TLS. The ACL is :func:`station.fleet.servers.fleet_acl`, the one CI, the demo and deployments start from.

MQTT v5 throughout: a refused QoS 1 publish comes back as a PUBACK with reason code 135 (Not authorized),
so a station learns at once that the broker dropped its message instead of believing it delivered.
"""

from __future__ import annotations

import queue
import ssl
import threading
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from station.fleet.protocol import Hwm, hwm_topic, row_topic
from station.fleet.servers import make_ca

SITE = "site1"
NOT_AUTHORIZED = 135
BAD_CREDENTIALS = 134
#: How long "never receives" waits: the broker is local, a delivered message takes milliseconds.
QUIET_S = 1.0
TIMEOUT_S = 10.0


class Peer:
    """One MQTT v5 client driven synchronously: connect, publish and wait for the PUBACK, subscribe and
    wait for the SUBACK, collect the messages it receives."""

    def __init__(self, broker, user: str, password: str | None = None, *, tls_ca=None, port: int | None = None):
        self.user = user
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"test-{user}",
                                  protocol=mqtt.MQTTv5)
        self.client.username_pw_set(user, broker.passwords[user] if password is None else password)
        if tls_ca is not None:
            self.client.tls_set(ca_certs=str(tls_ca))
        self.port = port or broker.port
        self.connack: queue.Queue[ReasonCode] = queue.Queue()
        self.pubacks: dict[int, ReasonCode] = {}
        self.subacks: dict[int, list[ReasonCode]] = {}
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self._acked = threading.Condition()
        self.client.on_connect = lambda c, u, flags, rc, props: self.connack.put(rc)
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = lambda c, u, msg: self.messages.put(msg)

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._acked:
            self.pubacks[mid] = reason_code
            self._acked.notify_all()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        with self._acked:
            self.subacks[mid] = list(reason_codes)
            self._acked.notify_all()

    def connect(self) -> ReasonCode:
        """Connect and return the CONNACK's reason code (the loop runs in paho's thread)."""
        self.client.connect("127.0.0.1", self.port, keepalive=10)
        self.client.loop_start()
        return self.connack.get(timeout=TIMEOUT_S)

    def _wait(self, table: dict, mid: int):
        with self._acked:
            assert self._acked.wait_for(lambda: mid in table, timeout=TIMEOUT_S), f"no ack for message {mid}"
            return table[mid]

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> ReasonCode:
        """Publish at QoS 1 and return the PUBACK's reason code."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        assert info.rc == mqtt.MQTT_ERR_SUCCESS
        return self._wait(self.pubacks, info.mid)

    def subscribe(self, topic: str) -> ReasonCode:
        """Subscribe at QoS 1 and return the SUBACK's reason code for that filter."""
        result, mid = self.client.subscribe(topic, qos=1)
        assert result == mqtt.MQTT_ERR_SUCCESS
        return self._wait(self.subacks, mid)[0]

    def received(self, wait_s: float = QUIET_S) -> list[mqtt.MQTTMessage]:
        """Every message that arrives within ``wait_s``."""
        deadline, got = time.monotonic() + wait_s, []
        while (left := deadline - time.monotonic()) > 0:
            try:
                got.append(self.messages.get(timeout=left))
            except queue.Empty:
                break
        return got

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def peers(fleet_broker):
    """``peers(user, ...)`` connects a client (and checks the CONNACK); all are disconnected at the end."""
    made: list[Peer] = []

    def connect(user: str, **kwargs) -> Peer:
        peer = Peer(fleet_broker, user, **kwargs)
        made.append(peer)
        reason = peer.connect()
        assert not reason.is_failure, f"{user} refused at CONNECT: {reason}"
        return peer

    yield connect
    for peer in made:
        peer.close()


def test_a_station_cannot_publish_as_another_station(peers):
    ingester = peers("ingester")
    assert ingester.subscribe("fleet/#").value < 0x80
    station_a = peers("st-a")

    forged = station_a.publish(row_topic(SITE, "st-b", "screenings"), b'{"forged": true}')
    own = station_a.publish(row_topic(SITE, "st-a", "screenings"), b'{"own": true}')

    assert forged.value == NOT_AUTHORIZED, forged
    assert not own.is_failure, own
    topics = [msg.topic for msg in ingester.received()]
    assert topics == [row_topic(SITE, "st-a", "screenings")]


def test_a_station_cannot_publish_high_water_marks_or_desk_acknowledgements(peers):
    station_a = peers("st-a")
    mark = Hwm(row_id=10**6, row_hash="0" * 64).encode()
    # Even for itself: a station that could write its own mark could make itself drop undelivered rows.
    assert station_a.publish(hwm_topic(SITE, "st-a", "screenings"), mark).value == NOT_AUTHORIZED
    assert station_a.publish(f"fleet/{SITE}/st-a/desk/ack", b"{}").value == NOT_AUTHORIZED


def test_a_wrong_password_is_refused_at_connect(fleet_broker):
    peer = Peer(fleet_broker, "st-a", password="not-the-password")
    try:
        reason = peer.connect()
    finally:
        peer.close()
    assert reason.is_failure
    assert reason.value in (BAD_CREDENTIALS, NOT_AUTHORIZED), reason


def test_an_unknown_user_is_refused_at_connect(fleet_broker):
    peer = Peer(fleet_broker, "st-a", password="st-a-secret")
    peer.client.username_pw_set("st-z", "whatever")
    try:
        reason = peer.connect()
    finally:
        peer.close()
    assert reason.value in (BAD_CREDENTIALS, NOT_AUTHORIZED), reason


def test_tls_with_the_broker_ca_connects(peers, fleet_broker):
    station_a = peers("st-a", tls_ca=fleet_broker.ca_file, port=fleet_broker.tls_port)
    assert not station_a.publish(row_topic(SITE, "st-a", "screenings"), b"{}").is_failure


def test_tls_with_another_ca_is_refused(fleet_broker, tmp_path):
    other_ca, _ = make_ca(tmp_path / "elsewhere", "other-ca")
    peer = Peer(fleet_broker, "st-a", tls_ca=other_ca, port=fleet_broker.tls_port)
    with pytest.raises(ssl.SSLCertVerificationError):
        peer.client.connect("127.0.0.1", fleet_broker.tls_port, keepalive=10)


def test_a_station_cannot_read_another_stations_marks(peers):
    ingester = peers("ingester")
    mark = Hwm(row_id=7, row_hash="a" * 64).encode()
    for station in ("st-a", "st-b"):
        assert not ingester.publish(hwm_topic(SITE, station, "screenings"), mark, retain=True).is_failure

    station_a = peers("st-a")
    granted = station_a.subscribe(f"fleet/{SITE}/st-b/hwm/#")
    foreign = station_a.received()
    assert granted.value >= 0x80 or not foreign, (granted, [m.topic for m in foreign])

    # Its own marks it does read (the retained one arrives on subscribing).
    assert not station_a.subscribe(f"fleet/{SITE}/st-a/hwm/#").is_failure
    assert [m.topic for m in station_a.received()] == [hwm_topic(SITE, "st-a", "screenings")]
