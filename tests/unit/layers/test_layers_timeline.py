"""The timeline: phases named, packets tied to the calls that caused them."""

from __future__ import annotations

from socketkit.layers.decode import decode_frames
from socketkit.layers.exchange import AppCall
from socketkit.layers.timeline import (
    Conversation,
    build_timeline,
    infer_conversation,
    is_complete,
)
from tests.unit.layers.builders import (
    CLIENT,
    SERVER,
    datagram,
    frames,
    segment,
    tcp_exchange,
)

CONV = Conversation.of("tcp", CLIENT, SERVER)


def calls_for(
    message: bytes, recv_sizes: list[int], send_sizes: list[int] | None = None
) -> list[AppCall]:
    """The calls our exchange makes, with stream offsets as run_exchange records them."""
    out = [AppCall(1, "connect", 0.0, 0.001)]
    offset = 0
    for size in send_sizes or [len(message)]:
        out.append(AppCall(len(out) + 1, "sendall", 0.002, 0.002, size, offset))
        offset += size
    offset = 0
    for size in recv_sizes:
        out.append(AppCall(len(out) + 1, "recv", 0.003, 0.003, size, offset))
        offset += size
    out.append(AppCall(len(out) + 1, "shutdown", 0.004, 0.004, detail="SHUT_WR"))
    out.append(AppCall(len(out) + 1, "recv", 0.005, 0.005, 0, offset))
    out.append(AppCall(len(out) + 1, "close", 0.006, 0.006))
    return out


def test_phases_of_an_echo_exchange() -> None:
    packets = decode_frames(frames(tcp_exchange(b"hello")))
    calls = calls_for(b"hello", [5])
    timeline = build_timeline(packets, CONV, calls)
    assert [(p.name, p.span) for p in timeline.phases] == [
        ("handshake", "#1-#3"),
        ("data", "#4"),
        ("acknowledgement", "#5"),
        ("data", "#6"),
        ("acknowledgement", "#7"),
        ("teardown", "#8-#10"),
    ]
    assert timeline.phases[0].title == "three-way handshake"
    by_packet = {e.packet: e for e in timeline.entries}
    assert by_packet[1].what.startswith("SYN:")
    assert by_packet[2].what.startswith("SYN-ACK:")
    assert "connect() returns" in by_packet[3].what
    assert by_packet[4].calls == (2,)  # sendall
    assert "sendall(5 bytes)" in by_packet[4].what
    assert by_packet[5].calls == ()  # the kernel's ACK: no call
    assert "confirms 5 bytes" in by_packet[5].what
    assert by_packet[6].calls == (3,)  # recv
    assert by_packet[8].calls == (4,)  # our FIN <- shutdown
    assert by_packet[9].calls == (5,)  # their FIN -> recv() returned 0
    assert "acknowledges the server's FIN" in by_packet[10].what
    assert [e.direction for e in timeline.entries][:2] == ["client -> server", "server -> client"]


def test_one_segment_read_by_several_recvs_is_tied_to_each() -> None:
    packets = decode_frames(frames(tcp_exchange(b"0123456789")))
    timeline = build_timeline(packets, CONV, calls_for(b"0123456789", [4, 4, 2]))
    echo = timeline.entries[5]
    assert echo.phase == "data"
    assert echo.direction == "server -> client"
    assert echo.calls == (3, 4, 5)


def test_several_segments_are_tied_by_their_byte_ranges() -> None:
    message = b"abcdefghij"
    packets = decode_frames(frames(tcp_exchange(message, echo_chunks=[3, 7], send_chunks=[6, 4])))
    calls = calls_for(message, [3, 7], send_sizes=[6, 4])
    timeline = build_timeline(packets, CONV, calls)
    data = [e for e in timeline.entries if e.phase == "data"]
    # client segments [0,6) and [6,10) <- sendall #2 and #3; echo [0,3), [3,10) -> recv #4, #5
    assert [e.calls for e in data] == [(2,), (3,), (4,), (5,)]


def test_udp_has_only_data_tied_in_order() -> None:
    conv = Conversation.of("udp", CLIENT, SERVER)
    packets = decode_frames(
        frames([datagram(CLIENT, SERVER, b"hi"), datagram(SERVER, CLIENT, b"hi")])
    )
    calls = [
        AppCall(1, "connect", 0, 0),
        AppCall(2, "send", 0, 0, 2, 0),
        AppCall(3, "recvmsg", 0, 0, 2, 0),
        AppCall(4, "close", 0, 0),
    ]
    timeline = build_timeline(packets, conv, calls)
    assert [p.name for p in timeline.phases] == ["data"]
    assert [e.calls for e in timeline.entries] == [(2,), (3,)]
    assert "no handshake" in timeline.entries[0].what
    assert is_complete(packets, conv, datagrams_out=1, datagrams_in=1)
    assert not is_complete(packets[:1], conv, datagrams_out=1, datagrams_in=1)


def test_complete_only_after_the_last_ack_of_the_teardown() -> None:
    packets = decode_frames(frames(tcp_exchange(b"hello")))
    for cut in range(len(packets)):
        assert not is_complete(packets[:cut], CONV), cut
    assert is_complete(packets, CONV)


def test_a_reset_completes_and_is_teardown() -> None:
    packets = decode_frames(frames([*tcp_exchange(b"x")[:4], segment(SERVER, CLIENT, "R", 5001)]))
    assert is_complete(packets, CONV)
    timeline = build_timeline(packets, CONV)
    assert timeline.entries[-1].phase == "teardown"
    assert "RST" in timeline.entries[-1].what


def test_packets_of_other_conversations_are_set_apart() -> None:
    stray = segment(("127.0.0.1", 5555), SERVER, "S", 1)
    packets = decode_frames(frames([*tcp_exchange(b"hi")[:3], stray]))
    timeline = build_timeline(packets, CONV)
    assert timeline.entries[-1].phase == "other"
    assert timeline.phases[-1].title == "other traffic"
    assert not is_complete(packets, CONV)


def test_the_conversation_is_inferred_from_the_first_syn() -> None:
    packets = decode_frames(frames(tcp_exchange()[1:2] + tcp_exchange()))
    conv = infer_conversation(packets)
    assert conv == CONV
    assert infer_conversation([]) is None
    udp = decode_frames(frames([datagram(SERVER, CLIENT, b"late reply")]))
    assert infer_conversation(udp) == Conversation.of("udp", SERVER, CLIENT)


def test_ipv6_addresses_are_compared_in_canonical_form() -> None:
    conv = Conversation.of("tcp", ("0:0::1", 40000), ("::0001", 10007))
    packets = decode_frames(frames(tcp_exchange(client=("::1", 40000), server=("::1", 10007))))
    assert all(conv.direction(p) is not None for p in packets)
    assert str(conv) == "TCP [::1]:40000 <-> [::1]:10007"
