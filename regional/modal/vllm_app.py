"""vLLM's OpenAI-compatible server on Modal, as an edge-router backend.

    modal secret create edge-router-vllm HF_TOKEN=hf_... VLLM_API_KEY="$(openssl rand -hex 32)"
    modal run regional/modal/vllm_app.py::download     # optional: fill the weights volume once
    modal deploy regional/modal/vllm_app.py

The endpoint is https://<workspace>--edge-router-vllm-serve.modal.run. It requires Modal proxy
auth: every request must carry the Modal-Key and Modal-Secret headers of a proxy auth token
(workspace settings), which the router holds as Worker secrets. Requests without them are refused
by Modal's proxy before any container (or GPU) is started. VLLM_API_KEY, when the secret has it,
is checked by vLLM as well (the router's `auth_secret`, sent as `Authorization: Bearer`).

Modal scales the function to zero by itself after SCALEDOWN_WINDOW without requests; the scale
scripts (scripts/scale/, driver "modal") only raise min_containers for keep-warm windows, using
the app and function names below. See README.md, "Standing up a region".
"""

import subprocess

import modal

APP_NAME = "edge-router-vllm"

# The model, as the router knows it: the id in wrangler.toml's [[models]] and its served_name
# (what the router sends as `model`). vLLM answers to both names.
MODEL_ID = "llama-3.1-8b"
SERVED_NAME = "meta-llama/Llama-3.1-8B-Instruct"
# A commit of the Hugging Face repo, for reproducible deploys; None follows main.
MODEL_REVISION = None

VLLM_VERSION = "0.11.0"  # the same engine as regional/kubernetes/vllm (kustomization.yaml)
VLLM_PORT = 8000
MAX_MODEL_LEN = 32768  # keep [[models]].max_model_len at or below it
GPU = "L40S"  # "H100", "A100-80GB", ...; "H100:2" with TENSOR_PARALLEL = 2
TENSOR_PARALLEL = 1

MINUTES = 60  # seconds

image = (
    modal.Image.debian_slim(python_version="3.12")
    .uv_pip_install(f"vllm=={VLLM_VERSION}")
    # Model download (HF cache) and torch.compile artifacts (vLLM cache) live on the volumes.
    .env({"HF_HOME": "/root/.cache/huggingface"})
)

# Volumes survive containers: a cold start loads the weights instead of downloading them, and
# reuses compiled kernels.
hf_cache = modal.Volume.from_name("edge-router-hf-cache", create_if_missing=True)
vllm_cache = modal.Volume.from_name("edge-router-vllm-cache", create_if_missing=True)

# HF_TOKEN (Llama weights are gated) and, optionally, VLLM_API_KEY.
secrets = [modal.Secret.from_name("edge-router-vllm", required_keys=["HF_TOKEN"])]

app = modal.App(APP_NAME)


@app.function(
    image=image,
    gpu=GPU,
    volumes={"/root/.cache/huggingface": hf_cache, "/root/.cache/vllm": vllm_cache},
    secrets=secrets,
    # Pin containers to the router region this backend belongs to (data residency; a plan feature):
    # region="us-east",
    # An idle container stays this long before Modal stops it (scale to zero).
    scaledown_window=15 * MINUTES,
    # 0: Modal parks the backend when idle. The scale scripts raise it for keep-warm windows.
    min_containers=0,
    max_containers=4,
    # One request (an input) may run this long: above the router's timeouts.total_ms.
    timeout=10 * MINUTES,
)
# Requests per container: the router's load signal is vLLM's own queue, so let vLLM batch
# (its --max-num-seqs) and have Modal add containers from target_inputs on.
@modal.concurrent(max_inputs=256, target_inputs=128)
@modal.web_server(port=VLLM_PORT, startup_timeout=20 * MINUTES, requires_proxy_auth=True)
def serve():
    cmd = [
        "vllm",
        "serve",
        SERVED_NAME,
        # The router sends served_name (or the id when it has none): answer to both.
        "--served-model-name",
        SERVED_NAME,
        MODEL_ID,
        "--host",
        "0.0.0.0",
        "--port",
        str(VLLM_PORT),
        # Requests sharing a prompt prefix reuse its KV blocks (the router's prefix affinity).
        "--enable-prefix-caching",
        "--max-model-len",
        str(MAX_MODEL_LEN),
        "--tensor-parallel-size",
        str(TENSOR_PARALLEL),
        "--max-num-seqs",
        "256",
    ]
    if MODEL_REVISION:
        cmd += ["--revision", MODEL_REVISION]
    # vLLM reads VLLM_API_KEY from the environment (the secret): it is not on the command line.
    # Modal waits until the port accepts connections, which vLLM does once the model is loaded.
    subprocess.Popen(cmd)


@app.function(image=image, volumes={"/root/.cache/huggingface": hf_cache}, secrets=secrets, timeout=60 * MINUTES)
def download():
    """Fills the weights volume, so the first request does not wait for the download."""
    from huggingface_hub import snapshot_download

    snapshot_download(SERVED_NAME, revision=MODEL_REVISION, ignore_patterns=["*.pth", "original/*"])
    hf_cache.commit()
