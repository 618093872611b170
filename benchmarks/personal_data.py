"""What ``exclude_fields`` and ``hash_fields`` cost: the write of decoded messages with and without them,
in every format, and the price a raw JSON Lines path (bytes copied as received) pays for decoding and
re-encoding every message once such an option is set.

``python -m benchmarks.personal_data [--messages 100000] [--repeat 3]`` prints a markdown table.
Messages are the emulator's (realistic fields, recordings on about a fifth of the answered calls),
built once and encoded; each run decodes a fresh copy (not timed, as the hook hands the operator
decoded pages) and times the write to a local temporary file. The best of ``--repeat`` runs is shown,
because other processes share this machine's cores. No network: the search is the same in every case.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import msgspec
from airflow.sdk import ObjectStoragePath

from airflow_voicetrack.emulator.query import parse_datetime_ms
from airflow_voicetrack.emulator.store import Store
from airflow_voicetrack.personal_data import PersonalDataFilter
from airflow_voicetrack.writers import write_messages

#: The README's example: drop what was said and the recording links, hash every phone number.
EXCLUDE = ("message.text", "recordings.url", "fileURL")
HASH = ("to", "from", "recordings.from", "recordings.to")
KEY = b"benchmark-key-not-a-secret-0123456789"
FORMATS = ("jsonl", "jsonl.gz", "csv", "parquet")
CASES: dict[str, tuple[Sequence[str], Sequence[str]]] = {
    "none": ((), ()),
    "exclude 3": (EXCLUDE, ()),
    "exclude 3 + hash 4": (EXCLUDE, HASH),
}


def encoded_messages(count: int) -> list[bytes]:
    """``count`` emulator messages over one day, each JSON-encoded as the API sends it."""
    start = parse_datetime_ms("2026-11-01T00:00:00Z")
    store = Store(1, count, start, start + 86_400_000)
    encoder = msgspec.json.Encoder()
    return [encoder.encode(store.record(entry).doc) for entry in store.entries]


def timed(
    action: Callable[[], Any], repeat: int, prepare: Callable[[], Any] | None = None
) -> tuple[float, float]:
    """:return: the best wall and CPU seconds of ``repeat`` runs of ``action(prepare())``."""
    best_wall = best_cpu = float("inf")
    for _ in range(repeat):
        argument = prepare() if prepare else None
        wall, cpu = time.perf_counter(), time.process_time()
        action(argument) if prepare else action()
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    return best_wall, best_cpu


def _write(
    personal_data: PersonalDataFilter, path: ObjectStoragePath, output_format: str, messages: list[Any]
) -> None:
    """Write as the operator does: the filter applied to the hook's decoded messages, if active."""
    stream = personal_data.apply_all(messages) if personal_data.active else messages
    write_messages(stream, path, output_format, columns=personal_data.columns())


def main(argv: Sequence[str] | None = None) -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.personal_data", description=__doc__)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    began = time.monotonic()
    bodies = encoded_messages(args.messages)
    decoder = msgspec.json.Decoder()
    n = len(bodies)
    print(f"{n:,} messages, {sum(map(len, bodies)) / n:.0f} bytes each on average; best of {args.repeat}")
    print(f"exclude = {list(EXCLUDE)}, hash = {list(HASH)}\n")
    print("| format | options | wall s | CPU s | records/s | CPU µs per message | added CPU µs per message |")
    print("|:--|:--|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for output_format in FORMATS:
            baseline = None
            for label, (exclude, hashed) in CASES.items():
                personal_data = PersonalDataFilter(exclude, hashed, KEY if hashed else None)
                path = ObjectStoragePath(f"file://{Path(tmp) / ('out.' + output_format)}")

                write = partial(_write, personal_data, path, output_format)
                if baseline is None:  # warm up: imports, pyarrow's first file
                    write([decoder.decode(b) for b in bodies[:1000]])
                wall, cpu = timed(write, args.repeat, lambda: [decoder.decode(b) for b in bodies])
                baseline = baseline or cpu
                added = "" if label == "none" else f"{(cpu - baseline) / n * 1e6:+.1f}"
                print(
                    f"| {output_format} | {label} | {wall:.2f} | {cpu:.2f} | {n / wall:,.0f} "
                    f"| {cpu / n * 1e6:.1f} | {added} |"
                )

        # The raw JSON Lines path: copy each message's bytes, or decode, filter and encode each one.
        personal_data = PersonalDataFilter(EXCLUDE, HASH, KEY)
        encoder = msgspec.json.Encoder()

        def copy_bytes() -> None:
            buffer = bytearray()
            for body in bodies:
                buffer += body
                buffer += b"\n"

        def decode_filter_encode() -> None:
            buffer = bytearray()
            for body in bodies:
                encoder.encode_into(personal_data.apply(decoder.decode(body)), buffer, -1)
                buffer += b"\n"

        raw_wall, raw_cpu = timed(copy_bytes, args.repeat)
        pii_wall, pii_cpu = timed(decode_filter_encode, args.repeat)
        print("\nRaw JSON Lines path, in memory (no file), per message as received:\n")
        print("| path | wall s | CPU s | records/s | CPU µs per message |")
        print("|:--|---:|---:|---:|---:|")
        for label, wall, cpu in (
            ("copy bytes (no option set)", raw_wall, raw_cpu),
            ("decode + exclude 3 + hash 4 + encode", pii_wall, pii_cpu),
        ):
            print(f"| {label} | {wall:.2f} | {cpu:.2f} | {n / wall:,.0f} | {cpu / n * 1e6:.1f} |")
    print(f"\nRun took {time.monotonic() - began:.0f} s.")


if __name__ == "__main__":
    main()
