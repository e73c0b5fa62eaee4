#!/usr/bin/env python3
"""Writes the committed fuzz seeds (fuzz/seeds/<target>/) from the test data.

Standard library only. Run from anywhere: `python3 fuzz/make-seeds.py`.

- export_packet: every netflow9/tests/data/logstash/*.dat (one raw UDP
  payload each) and every UDP payload of the four v9 captures in
  netflow9/tests/data/exports/ (classic pcap; Ethernet, raw IP or BSD
  loopback; IPv4 or IPv6; UDP).
- roundtrip: the logstash packets and the first few packets of each
  capture. The target reads its input through `arbitrary`, so a packet is
  just a starting point with realistic byte values; libFuzzer mutates it
  into descriptions.
- stream: datagrams in the stream target's frame format (1 exporter byte,
  a 2-byte big-endian length, the datagram): each logstash case's packets
  in receive order (template packets, then data packets), and the start of
  each capture, whose first packets carry the templates.

Seeds are named after their source, so a rerun rewrites the same files.
"""

import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "netflow9", "tests", "data")
SEEDS = os.path.join(HERE, "seeds")
CAPTURES = [
    "nfreplay-v9.pcap",
    "pmacct-v9.pcap",
    "softflowd-v9.pcap",
    "softflowd-v9-ether-ipv6.pcap",
]
# Packets of a capture that go into one stream seed; the captures' exporters
# send their templates in the first packets.
STREAM_PACKETS = 12
# Packets of a capture that also seed roundtrip.
ROUNDTRIP_PACKETS = 8
# A stream seed larger than this is cut at a datagram boundary.
STREAM_MAX = 16 * 1024


def udp_payloads(path):
    """Yields the UDP payload of every datagram of a classic pcap."""
    with open(path, "rb") as f:
        data = f.read()
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    else:
        raise SystemExit(f"{path}: not a classic pcap")
    (linktype,) = struct.unpack(e + "I", data[20:24])
    pos = 24
    while pos + 16 <= len(data):
        (caplen,) = struct.unpack(e + "I", data[pos + 8 : pos + 12])
        frame = data[pos + 16 : pos + 16 + caplen]
        pos += 16 + caplen
        if linktype == 1:  # Ethernet, maybe VLAN-tagged
            (ethertype,) = struct.unpack(">H", frame[12:14])
            off = 14
            while ethertype in (0x8100, 0x88A8):
                (ethertype,) = struct.unpack(">H", frame[off + 2 : off + 4])
                off += 4
            if ethertype not in (0x0800, 0x86DD):
                continue
            ip = frame[off:]
        elif linktype == 101:  # raw IP
            ip = frame
        elif linktype == 0:  # BSD loopback
            ip = frame[4:]
        else:
            raise SystemExit(f"{path}: linktype {linktype}")
        if not ip:
            continue
        version = ip[0] >> 4
        if version == 4:
            ihl = (ip[0] & 0xF) * 4
            proto, l4 = ip[9], ip[ihl:]
        elif version == 6:
            proto, l4 = ip[6], ip[40:]
        else:
            continue
        if proto != 17 or len(l4) < 8:
            continue
        (ulen,) = struct.unpack(">H", l4[4:6])
        yield l4[8 : min(ulen, len(l4))]


def frame(exporter, datagram):
    return struct.pack(">BH", exporter, len(datagram)) + datagram


def write(target, name, data):
    d = os.path.join(SEEDS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def stream_seed(datagrams, exporter=0):
    out = b""
    for d in datagrams:
        f = frame(exporter, d)
        if out and len(out) + len(f) > STREAM_MAX:
            break
        out += f
    return out


def main():
    logstash = os.path.join(DATA, "logstash")
    dats = sorted(n for n in os.listdir(logstash) if n.endswith(".dat"))
    for name in dats:
        with open(os.path.join(logstash, name), "rb") as f:
            payload = f.read()
        for target in ("export_packet", "roundtrip"):
            write(target, "logstash-" + name, payload)

    # Stream seeds: each logstash case's files in receive order.
    with open(os.path.join(logstash, "cases.json")) as f:
        cases = json.load(f)
    if isinstance(cases, dict):
        cases = cases.get("cases", list(cases.values()))
    n_cases = 0
    for i, case in enumerate(cases):
        files = case.get("files") if isinstance(case, dict) else None
        if not files or len(files) < 2:
            continue
        datagrams = []
        for name in files:
            with open(os.path.join(logstash, name), "rb") as f:
                datagrams.append(f.read())
        label = case.get("name", str(i)) if isinstance(case, dict) else str(i)
        label = "".join(c if c.isalnum() or c in "-_" else "_" for c in label)
        # A second exporter (IPv6) sends the same case: same Source IDs and
        # Template IDs under a different key.
        seed = stream_seed(datagrams, 0) + stream_seed(datagrams, 2)
        write("stream", f"logstash-{label}.bin", seed)
        n_cases += 1

    for capture in CAPTURES:
        payloads = list(udp_payloads(os.path.join(DATA, "exports", capture)))
        stem = capture[: -len(".pcap")]
        for i, p in enumerate(payloads):
            write("export_packet", f"{stem}-{i:04}.bin", p)
            if i < ROUNDTRIP_PACKETS:
                write("roundtrip", f"{stem}-{i:04}.bin", p)
        write("stream", f"{stem}.bin", stream_seed(payloads[:STREAM_PACKETS]))
        # Data before templates: the pending buffer, then replay.
        write("stream", f"{stem}-reversed.bin", stream_seed(payloads[:STREAM_PACKETS][::-1], 1))
        print(f"{capture}: {len(payloads)} datagrams", file=sys.stderr)
    print(f"logstash: {len(dats)} packets, {n_cases} stream cases", file=sys.stderr)


if __name__ == "__main__":
    main()
