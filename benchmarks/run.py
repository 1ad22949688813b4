"""Benchmark aioqueue against the official azure-storage-queue aio client and bare aiohttp (the floor).

    ./dev bench                      # 3,000 messages of 256 B, concurrency 32, 3 rounds, writes the README table
    ./dev bench --messages 500 --rounds 1 --no-readme
    ./dev bench --instructions --messages 300 --peeks 100   # instructions per operation (valgrind)
    ./dev bench --no-readme --clients floor,aioqueue,aioqueue-otel   # what OpenTelemetry costs, configured
    ./dev bench --no-readme --clients floor,aioqueue --without-otel  # ... and as if it were not installed

Each (round, phase, client) runs in its own child process, interleaved A B C A B C, against a fresh
Azurite started here. Client CPU comes from the child's own getrusage (the emulator's CPU is not
counted); peak RSS is the child's. Figures are medians over rounds; ratios are to the floor in the same
run. A second part measures a receive() consumer's peak RSS as the queue depth grows (prefetch is bounded).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SAVED = HERE / "saved"  # the raw results behind README.md's tables (committed; results/ is scratch)
sys.path.insert(0, str(HERE))

PHASES = [
    ("send", "send N (concurrency 32)", "message"),
    ("receive_delete", "receive 32 + delete each, until drained", "message"),
    ("peek", "peek 32", "call"),
    ("peek_empty", "peek, empty queue", "call"),
    ("consume", "consumer end to end", "message"),
]
ORDER = ["aioqueue", "aioqueue-sas", "official", "floor"]
START, END = "<!-- benchmark-table:start -->", "<!-- benchmark-table:end -->"
INSTR_START, INSTR_END = "<!-- instructions-table:start -->", "<!-- instructions-table:end -->"


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def child(
    client_name: str, conn_str: str, phase: str, messages: int, size: int, peeks: int, loop_name: str
) -> dict:
    """One measured phase of one client, against a fresh emulator (see main)."""
    from clients import CLIENTS

    client = CLIENTS[client_name](conn_str, f"bench-{uuid.uuid4().hex[:12]}")
    texts = [f"{i:08d}".ljust(size, "x") for i in range(messages)]
    await client.create()
    # warm up (not measured): open the pool's connections and run every code path once,
    # so the figures are steady-state cost per operation rather than start-up cost
    await client.send(texts[:64], 32)
    await client.peek(5)
    await client.receive_delete()
    if phase not in ("send", "peek_empty"):
        await client.send(texts, 32)  # what the phase reads: not measured (the warm-up left it empty)
    work = {
        "send": lambda: client.send(texts, 32),
        "peek": lambda: client.peek(peeks),
        "peek_empty": lambda: client.peek(peeks),
        "receive_delete": client.receive_delete,
        "consume": client.consume,
    }[phase]
    counting = os.environ.get("AIOQUEUE_BENCH_COUNT") == "1"  # under callgrind: count this phase only
    if counting:
        _callgrind("on")
    c0, t0 = cpu(), time.perf_counter()
    done = await work()
    c1, t1 = cpu(), time.perf_counter()
    if counting:
        _callgrind("off")
    n = done if isinstance(done, int) else (peeks if phase.startswith("peek") else messages)
    await client.close()
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "client": client_name,
        "phase": phase,
        "cpu_us": (c1 - c0) / n * 1e6,
        "wall_s": t1 - t0,
        "ops_s": n / (t1 - t0),
        "ops": n,
        "peak_rss_mb": rss_kb / 1024,
        "loop": loop_name,
        "otel_loaded": "opentelemetry" in sys.modules,
    }


CONSUMED = 1000  # messages the depth check consumes from each queue


async def fill_child(conn_str: str, name: str, depth: int, size: int) -> dict:
    """Fill a queue to ``depth`` (with the floor client, in its own process)."""
    from clients import FloorClient

    filler = FloorClient(conn_str, name)
    await filler.create()
    await filler.send([f"{i:08d}".ljust(size, "x") for i in range(depth)], 64)
    await filler.session.close()
    return {"filled": depth}


async def depth_child(conn_str: str, name: str, depth: int) -> dict:
    """Consume CONSUMED messages of a queue ``depth`` deep with aioqueue's receive(): the consumer's
    memory must not depend on how deep the queue is."""
    from clients import AioqueueClient

    from aioqueue import QueueClient

    consumer = AioqueueClient(conn_str, name)
    # Azurite's own cost per operation grows with the queue's depth: give it time per attempt
    consumer.queue = QueueClient.from_connection_string(conn_str, name, timeout=120)
    done = 0
    async for msg in consumer.queue.receive(max_messages=min(depth, CONSUMED), visibility_timeout=300):
        async with msg:
            done += 1
    await consumer.close()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"depth": depth, "consumed": done, "peak_rss_mb": rss / 1024}


class ChildFailed(Exception):
    pass


class _HideOtel:
    """A meta path finder making opentelemetry unimportable in a child, as if it were not installed."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ModuleNotFoundError(f"No module named {name!r} (hidden by --without-otel)", name=name)
        return None


def _callgrind(state: str) -> None:
    """Switch callgrind's instruction counting for this process on or off."""
    subprocess.run(["callgrind_control", "-i", state, str(os.getpid())], check=True, capture_output=True)


def run_child(args: list[str], prefix: list[str] | None = None, env: dict[str, str] | None = None) -> dict:
    command = [*(prefix or []), sys.executable, __file__, *args]
    out = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if out.returncode != 0:
        last = [line for line in out.stderr.splitlines() if "Error" in line or "Exception" in line]
        raise ChildFailed(f"benchmark child {args[0]} {args[1]} failed: {last[-1] if last else out.returncode}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def table(runs: list[dict], clients: list[str]) -> tuple[str, dict]:
    med = {
        c: {
            p: {
                k: statistics.median(r[k] for r in runs if r["client"] == c and r["phase"] == p)
                for k in ("cpu_us", "wall_s", "ops_s")
            }
            for p, _, _ in PHASES
        }
        for c in clients
    }
    rss = {c: max(r["peak_rss_mb"] for r in runs if r["client"] == c) for c in clients}
    cpu_us = {c: {p: med[c][p]["cpu_us"] for p, _, _ in PHASES} for c in clients}
    cpu = ratio_table(cpu_us, clients, "CPU µs", lambda v: f"{v:.0f}")
    speed = [
        "| phase | "
        + " | ".join(f"{c} ops/s" for c in clients)
        + " | "
        + " | ".join(f"{c} wall s" for c in clients)
        + " |",
        "|---|" + "---:|" * (2 * len(clients)),
    ]
    for phase, label, _ in PHASES:
        speed.append(
            f"| {label} | "
            + " | ".join(
                [f"{med[c][phase]['ops_s']:.0f}" for c in clients] + [f"{med[c][phase]['wall_s']:.1f}" for c in clients]
            )
            + " |"
        )
    others = [c for c in clients if c != "floor"]
    cpu.append("| peak RSS (MB) | process | " + " | ".join(f"{rss[c]:.0f}" for c in clients) + " |" * (len(others) + 1))
    return "\n".join(
        cpu
    ) + "\n\nThroughput and wall time (the emulator, not the client, is the bottleneck here):\n\n" + "\n".join(
        speed
    ), med


def ratio_table(values: dict[str, dict[str, float]], clients: list[str], column: str, cell) -> list[str]:
    """Markdown lines: per phase, each client's value and each non-floor client's ratio to the floor."""
    others = [c for c in clients if c != "floor"]
    lines = [
        "| phase | per | "
        + " | ".join(f"{c} {column}" for c in clients)
        + " | "
        + " | ".join(f"{c} / floor" for c in others)
        + " |",
        "|---|---|" + "---:|" * (len(clients) + len(others)),
    ]
    for phase, label, unit in PHASES:
        floor = values["floor"][phase] if "floor" in values else None
        cells = [cell(values[c][phase]) for c in clients]
        ratios = [f"**{values[c][phase] / floor:.2f}x**" if floor else "n/a" for c in others]
        lines.append(f"| {label} | {unit} | " + " | ".join(cells + ratios) + " |")
    return lines


def chart(med: dict, clients: list[str], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / len(clients)
    for i, c in enumerate(clients):
        values = [med[c][p]["cpu_us"] / med["floor"][p]["cpu_us"] for p, _, _ in PHASES]
        ax.bar([x + i * width for x in range(len(PHASES))], values, width, label=c)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks([x + width * (len(clients) - 1) / 2 for x in range(len(PHASES))], [p for p, _, _ in PHASES])
    ax.set_ylabel("client CPU per operation / floor")
    ax.set_title("aioqueue vs azure-storage-queue vs bare aiohttp (lower is better)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return True


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--peeks", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--clients", default=",".join(ORDER), help="also aioqueue-otel: aioqueue with OpenTelemetry configured"
    )
    parser.add_argument("--depths", default="1000,5000,20000", help="queue depths for the RSS check ('' skips)")
    parser.add_argument("--uvloop", action="store_true", help="run the children on uvloop")
    parser.add_argument(
        "--without-otel", action="store_true", help="run the children with opentelemetry hidden (not importable)"
    )
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="count each client's instructions per operation under valgrind's callgrind instead (noise-free; "
        "needs valgrind; use fewer --messages, e.g. 300)",
    )
    parser.add_argument("--no-readme", action="store_true", help="print the table without writing README.md")
    parser.add_argument(
        "--from-saved",
        action="store_true",
        help="write README.md's tables and the chart again from benchmarks/saved/ without running anything",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a quick run that proves the harness works (tiny counts, one round, no depth check); writes no file",
    )
    parser.add_argument("--child", nargs=3, metavar=("CLIENT", "CONN", "PHASE"), help=argparse.SUPPRESS)
    parser.add_argument("--depth-child", nargs=3, metavar=("DEPTH", "CONN", "QUEUE"), help=argparse.SUPPRESS)
    parser.add_argument("--fill-child", nargs=3, metavar=("DEPTH", "CONN", "QUEUE"), help=argparse.SUPPRESS)
    return parser


def main() -> None:
    args = _parser().parse_args()
    if args.from_saved:
        from_saved()
        return
    if args.smoke:
        args.messages, args.peeks, args.rounds, args.depths, args.no_readme = 40, 3, 1, "", True
    if args.child or args.depth_child or args.fill_child:
        print(json.dumps(_child_main(args)))
        return
    clients = args.clients.split(",")
    common = ["--messages", str(args.messages), "--size", str(args.size), "--peeks", str(args.peeks)]
    if args.uvloop:
        common.append("--uvloop")
    if args.without_otel:
        common.append("--without-otel")
    executable = _pinned_emulator(args)
    if args.instructions:
        instructions(clients, common, executable, args)
        return
    results = _rounds(clients, common, executable, args)
    depth_rows = _depths(common, executable, args)
    saved = {"meta": _meta(args), "clients": clients, "rounds": results, "depths": depth_rows}
    block, med = cpu_block(saved)
    print(block)
    if not args.smoke:  # the smoke run proves the harness works; it writes nothing
        _save(saved, block, med, args)


def _child_main(args: argparse.Namespace) -> dict:
    """A child process: one measured phase, or a depth check's fill or consumer."""
    if hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core; the emulator gets the other
    if args.without_otel:
        sys.meta_path.insert(0, _HideOtel())
    loop_name = "asyncio"
    if args.uvloop:
        import uvloop

        uvloop.install()
        loop_name = "uvloop"
    if args.child:
        client_name, conn, phase = args.child
        return asyncio.run(child(client_name, conn, phase, args.messages, args.size, args.peeks, loop_name))
    if args.fill_child:
        depth, conn, name = args.fill_child
        return asyncio.run(fill_child(conn, name, int(depth), args.size))
    depth, conn, name = args.depth_child
    return asyncio.run(depth_child(conn, name, int(depth)))


def _pinned_emulator(args: argparse.Namespace) -> str | None:
    """A wrapper that starts Azurite on the cores the client does not use (None: start it as it is)."""
    from aioqueue.testing import find_azurite

    emulator_cores = sorted(os.sched_getaffinity(0))[1:] if hasattr(os, "sched_getaffinity") else []
    if not emulator_cores or not shutil.which("taskset") or args.smoke:
        return None
    wrapper = HERE / "results" / "azurite-pinned"
    wrapper.parent.mkdir(exist_ok=True)
    wrapper.write_text(f'#!/bin/sh\nexec taskset -c {",".join(map(str, emulator_cores))} {find_azurite()} "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


def _rounds(clients: list[str], common: list[str], executable: str | None, args: argparse.Namespace) -> list[dict]:
    """Every (round, phase, client)'s child result, interleaved A B C D A B C D."""
    from aioqueue.testing import Azurite

    results = []
    with contextlib.ExitStack() as stack:
        # a smoke run's few messages never reach the sweep described below: one emulator serves every phase
        # (each child uses a queue of its own), which saves starting Azurite twenty times
        shared = stack.enter_context(Azurite(executable=executable)) if args.smoke else None
        for r in range(args.rounds):
            for phase, _, _ in PHASES:
                for c in clients:
                    # A fresh emulator for every measured phase: Azurite's in-memory store sweeps deleted
                    # messages once a minute, and after a few thousand deletions that sweep blocks it for
                    # tens of seconds to minutes. A phase, fill included, ends well inside that minute.
                    print(f"round {r + 1}/{args.rounds}: {phase} {c} ...", file=sys.stderr, flush=True)
                    fresh = contextlib.nullcontext(shared) if shared else Azurite(executable=executable)
                    with fresh as emulator:
                        results.append(run_child(["--child", c, emulator.connection_string, phase, *common]))
            if not args.smoke:
                (HERE / "results").mkdir(exist_ok=True)
                (HERE / "results" / "rounds.json").write_text(json.dumps(results, indent=1))
    return results


def _depths(common: list[str], executable: str | None, args: argparse.Namespace) -> list[dict]:
    """A receive() consumer's peak RSS at each queue depth of --depths."""
    from aioqueue.testing import Azurite

    depth_rows = []
    for depth in [int(d) for d in args.depths.split(",") if d]:
        print(f"depth {depth} ...", file=sys.stderr, flush=True)
        name = f"depth-{uuid.uuid4().hex[:12]}"
        with Azurite(executable=executable) as emulator:  # fresh, for the reason above
            conn = emulator.connection_string
            try:
                run_child(["--fill-child", str(depth), conn, name, *common])
                depth_rows.append(run_child(["--depth-child", str(depth), conn, name, *common]))
            except ChildFailed as exc:  # reported in the table, not hidden
                print(exc, file=sys.stderr)
                depth_rows.append({"depth": depth, "consumed": 0, "peak_rss_mb": float("nan"), "error": str(exc)})
    return depth_rows


def _save(saved: dict, block: str, med: dict, args: argparse.Namespace) -> None:
    """Keep a run's results (and with README.md, its tables and chart)."""
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "latest.json").write_text(json.dumps(saved, indent=1))
    if args.no_readme:
        return
    # a run that writes the README keeps its raw results beside it: --from-saved renders them again
    SAVED.mkdir(exist_ok=True)
    (SAVED / "cpu.json").write_text(json.dumps(saved, indent=1) + "\n")
    if "floor" in saved["clients"] and chart(med, saved["clients"], HERE / "chart.png"):
        print("\nchart: benchmarks/chart.png", file=sys.stderr)
    _write_readme(START, END, block)


def _meta(args: argparse.Namespace) -> dict:
    """When, where and how a run was made: printed under its table."""
    import datetime
    import platform

    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    try:
        azurite = json.loads((ROOT / "node_modules" / "azurite" / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        azurite = "?"
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
        "machine": f"{os.cpu_count()} cores, {model}",
        "python": sys.version.split()[0],
        "azurite": azurite,
        "messages": args.messages,
        "size": args.size,
        "peeks": args.peeks,
        "rounds": args.rounds,
        "loop": "uvloop" if args.uvloop else "asyncio",
        "without_otel": args.without_otel,
    }


def cpu_block(saved: dict) -> tuple[str, dict]:
    """The CPU table (and the depth check's) of a run, as README.md shows it."""
    m, clients, depth_rows = saved["meta"], saved["clients"], saved["depths"]
    text, med = table(saved["rounds"], clients)
    info = (
        f"{m['messages']} messages of {m['size']} B, concurrency 32, {m['peeks']} peeks, median of "
        f"{m['rounds']} interleaved rounds, Python {m['python']}, {m['loop']}"
        f"{', opentelemetry hidden' if m['without_otel'] else ''}; measured {m['date']} on {m['machine']} "
        f"(client on one core, Azurite {m['azurite']} on the other, a fresh one per phase)"
    )
    if depth_rows:
        text += (
            f"\n\nA `receive()` consumer's peak RSS while it consumes {CONSUMED:,} messages from queues of "
            "growing depth (prefetch is bounded to one batch, so depth does not matter):\n\n"
        )
        text += "| queue depth | consumed | peak RSS (MB) |\n|---:|---:|---:|\n"
        text += "\n".join(
            f"| {d['depth']:,} | {d['consumed']:,} | {d['peak_rss_mb']:.0f} |"
            if "error" not in d
            else f"| {d['depth']:,} | failed: {d['error'].rsplit(': ', 1)[-1][:80]} | |"
            for d in depth_rows
        )
    return f"{text}\n\n_{info}._", med


def instructions_block(saved: dict) -> str:
    """The instructions table of a run, as README.md shows it."""
    m = saved["meta"]
    lines = ratio_table(saved["counts"], saved["clients"], "instructions", lambda v: f"{v / 1000:,.0f}k")
    return "\n".join(lines) + (
        f"\n\n_{m['messages']} messages of {m['size']} B, {m['peeks']} peeks, instructions the client process "
        f"executed during each phase (callgrind), Python {m['python']}, {m['loop']}"
        f"{', opentelemetry hidden' if m['without_otel'] else ''}; measured {m['date']} on {m['machine']}, "
        f"Azurite {m['azurite']}._"
    )


def from_saved() -> None:
    """Write README.md's tables (and the chart) again from benchmarks/saved/, running nothing."""
    cpu_file, instr_file = SAVED / "cpu.json", SAVED / "instructions.json"
    if cpu_file.exists():
        saved = json.loads(cpu_file.read_text())
        block, med = cpu_block(saved)
        if "floor" in saved["clients"]:
            chart(med, saved["clients"], HERE / "chart.png")  # docs/assets/benchmark-chart.png links to it
        _write_readme(START, END, block)
    if instr_file.exists():
        _write_readme(INSTR_START, INSTR_END, instructions_block(json.loads(instr_file.read_text())))


def instructions(clients: list[str], common: list[str], executable: str | None, args: argparse.Namespace) -> None:
    """Instructions each client executes per operation in each phase, counted by callgrind only while the
    phase runs (set-up, warm-up and interpreter start are not counted). Unlike CPU time, the count does
    not move with the machine's load, so small differences are real; it does not see cache misses or
    the kernel's share, so CPU time stays the benchmark's main figure."""
    from aioqueue.testing import Azurite

    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        sys.exit("--instructions needs valgrind (e.g. apt-get install valgrind)")
    out_dir = HERE / "results" / "callgrind"
    out_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "AIOQUEUE_BENCH_COUNT": "1", "PYTHONPATH": str(ROOT)}
    counts: dict[str, dict[str, float]] = {c: {} for c in clients}
    for phase, _, _ in PHASES:
        for c in clients:
            print(f"instructions: {phase} {c} ...", file=sys.stderr, flush=True)
            out_file = out_dir / f"{c}.{phase}.out"
            prefix = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out_file}"]
            with Azurite(executable=executable) as emulator:
                result = run_child(["--child", c, emulator.connection_string, phase, *common], prefix, env)
            counts[c][phase] = _callgrind_total(out_file) / result["ops"]
    saved = {"meta": _meta(args), "clients": clients, "counts": counts}
    block = instructions_block(saved)
    print(block)
    if not args.no_readme:
        SAVED.mkdir(exist_ok=True)
        (SAVED / "instructions.json").write_text(json.dumps(saved, indent=1) + "\n")
        _write_readme(INSTR_START, INSTR_END, block)


def _write_readme(start: str, end: str, block: str) -> None:
    """Replace what stands between the two markers in README.md."""
    readme = ROOT / "README.md"
    content = readme.read_text()
    if start in content and end in content:
        head, rest = content.split(start, 1)
        _, tail = rest.split(end, 1)
        readme.write_text(f"{head}{start}\n{block}\n{end}{tail}")
        print("README.md table updated", file=sys.stderr)


def _callgrind_total(path: Path) -> int:
    """The instruction count of a callgrind output file (its 'totals:' line)."""
    totals = [line for line in path.read_text().splitlines() if line.startswith("totals:")]
    if not totals:
        raise ChildFailed(f"no instruction total in {path}")
    return int(totals[-1].split()[1])


if __name__ == "__main__":
    main()
