"""`jalm serve` (the model's homepage and API on this machine) and `jalm card` (the same card as a Hub README)."""

from __future__ import annotations

import argparse
import ipaddress
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from jalm.errors import JalmError

DEFAULT_PORT = 8000


def listen_host(host: str | None, expose: bool) -> str:
    """127.0.0.1 unless told otherwise; an address reachable from other machines needs --expose."""
    if host is None:
        return "0.0.0.0" if expose else "127.0.0.1"
    if not expose and not _is_loopback(host):
        raise JalmError(
            f"--host {host} would make the server reachable from other machines; add --expose to mean it"
        )
    return host


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0 = any free port), bound before the server starts so the URL is known."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise JalmError(
            f"cannot listen on {host}:{port} ({error.strerror}); choose another --port (0 = any free port)"
        ) from None
    sock.listen(128)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def load_app(
    model_dir: str | Path,
    results: str | Path | None = None,
    device: str = "cpu",
    dtype: str = "float32",
    name: str | None = None,
    limits=None,
    model_ref: str | None = None,
):
    """Load the model and build the app: facts for the card first, so a bad directory fails before loading."""
    from jalm.generate import load
    from jalm.hf import check_model_dir
    from jalm.serve.app import create_app
    from jalm.serve.facts import collect

    check_model_dir(model_dir)
    facts = collect(model_dir, results=results, name=name)
    model, tokenizer = load(model_dir, device, dtype)
    return create_app(facts, model, tokenizer, limits=limits, model_ref=model_ref or str(model_dir))


def serve(app, sock: socket.socket, log_level: str = "info") -> None:
    import uvicorn

    config = uvicorn.Config(app, log_level=log_level, timeout_graceful_shutdown=5)
    uvicorn.Server(config).run(sockets=[sock])


@contextmanager
def running(app, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Run `app` with uvicorn on a background thread (for notebooks, scripts and tests); yields its URL."""
    import threading
    import time

    import uvicorn

    sock = bind(host, port)
    url = url_of(sock)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="jalm-serve", daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            sock.close()
            raise JalmError(f"the server on {url} stopped while starting")
        time.sleep(0.02)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def write_card(
    model_dir: str | Path,
    out: str | Path | None = None,
    results: str | Path | None = None,
    license: str = "apache-2.0",
    datasets: list[str] | None = None,
    repo_id: str | None = None,
    samples: bool = True,
    device: str = "cpu",
    dtype: str = "float32",
    name: str | None = None,
) -> Path:
    """Write the model card as a Hugging Face README.md (next to the model unless `out` says otherwise)."""
    from jalm.hf import check_model_dir
    from jalm.serve.card import PROMPT, draw_loss, write_readme
    from jalm.serve.facts import collect

    model_dir = check_model_dir(model_dir, need_weights=samples, need_tokenizer=samples)
    out = Path(out) if out is not None else model_dir / "README.md"
    facts = collect(model_dir, results=results, name=name or repo_id)
    if facts.loss_png is None and (facts.train_curve or facts.val_curve):  # metrics, no plot: draw one
        out.parent.mkdir(parents=True, exist_ok=True)
        draw_loss(facts, out.parent / "loss.png")
        facts.loss_png = out.parent / "loss.png"
    texts = None
    if samples:
        from jalm.generate import generate

        texts = generate(
            model_dir,
            PROMPT,
            max_length=30,
            do_sample=True,
            num_return_sequences=5,
            seed=101,
            device=device,
            dtype=dtype,
        )
    return write_readme(
        facts, out, model_ref=repo_id or str(model_dir), samples=texts, license=license, datasets=datasets
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="the model's homepage: card, playground and an OpenAI-compatible API",
        description="Serve a model directory on this machine: a model card page with a playground (sampling "
        "controls, streamed output) and an OpenAI-compatible API (/v1/completions, /v1/chat/completions in "
        "the model's chat template or, for a model without one, LINE's sft format, /v1/models, /health). "
        "Listens on 127.0.0.1 unless --expose is given.",
        epilog="example: jalm serve --model runs/demo/model   (then open http://127.0.0.1:8000/)",
    )
    parser.add_argument("--model", required=True, help="model directory (config.json, weights, tokenizer)")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 = any free port)"
    )
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1; others need --expose)")
    parser.add_argument(
        "--expose",
        action="store_true",
        help="allow listening beyond loopback (default host then 0.0.0.0); anyone who can reach it can use it",
    )
    parser.add_argument(
        "--results",
        help="results.json for the card (default: MODEL/results.json, then MODEL/../results.json)",
    )
    parser.add_argument("--name", help="model id in the API and title (default: the directory's name)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--dtype", default="float32", help="float32, bfloat16, float16 or auto")
    parser.add_argument(
        "--max-tokens", type=int, default=1024, help="largest max_tokens a request may ask (default 1024)"
    )
    parser.add_argument(
        "--max-prompt-chars", type=int, default=16_000, help="longest prompt in characters (default 16000)"
    )
    parser.add_argument(
        "--max-batch",
        type=int,
        default=16,
        help="sequences decoded together: concurrent requests join and leave the batch between steps "
        "(default 16; 1 = one request at a time)",
    )
    parser.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    parser.set_defaults(func=run_serve)

    card = subparsers.add_parser(
        "card",
        help="write the model card as a Hugging Face README.md",
        description="Write the model card (architecture, tokenizer, training, data, evaluation, usage, samples) as "
        "a Hugging Face README.md with YAML metadata, next to the model unless --out is given.",
        epilog="example: jalm card --model runs/demo/model --license apache-2.0",
    )
    card.add_argument("--model", required=True, help="model directory")
    card.add_argument("--out", help="README path (default MODEL/README.md)")
    card.add_argument(
        "--results", help="results.json (default: MODEL/results.json, then MODEL/../results.json)"
    )
    card.add_argument(
        "--license", default="apache-2.0", help="license id for the metadata (default apache-2.0)"
    )
    card.add_argument("--dataset", action="append", default=[], help="Hub dataset id trained on (repeatable)")
    card.add_argument("--repo-id", help="Hub repository id, used as the name and in the usage snippet")
    card.add_argument(
        "--no-samples", action="store_true", help="do not generate sample outputs (no weights needed)"
    )
    card.add_argument("--device", default="cpu", help="torch device for the samples (default cpu)")
    card.set_defaults(func=run_card)


def run_serve(args: argparse.Namespace) -> int:
    from jalm.serve.api import Limits

    host = listen_host(args.host, args.expose)
    if args.max_tokens < 1 or args.max_prompt_chars < 1 or args.max_batch < 1:
        raise JalmError("--max-tokens, --max-prompt-chars and --max-batch must be positive")
    from jalm.hf import check_model_dir

    check_model_dir(args.model)  # a wrong directory or a busy port fail at once, before the model loads
    sock = bind(host, args.port)
    limits = Limits(
        max_tokens=args.max_tokens, max_prompt_chars=args.max_prompt_chars, max_batch=args.max_batch
    )
    app = load_app(args.model, args.results, args.device, args.dtype, args.name, limits)
    url = url_of(sock)
    print(
        f"jalm serve: {app.state.facts.name} at {url}  (card + playground; API under {url}v1)",
        flush=True,
    )
    if not _is_loopback(host):
        print(
            f"jalm serve: listening on {host}: reachable from other machines, without authentication",
            flush=True,
        )
    serve(app, sock, args.log_level)
    return 0


def run_card(args: argparse.Namespace) -> int:
    out = write_card(
        args.model,
        args.out,
        args.results,
        args.license,
        args.dataset,
        args.repo_id,
        samples=not args.no_samples,
        device=args.device,
    )
    print(f"wrote {out}")
    return 0
