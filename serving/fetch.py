"""How the model gets into a serving pod: where the weights come from and the init container that fetches them.

One decision per part (:func:`model_source`), read from the plan, used by the RayService builder
(:mod:`serving.kuberay`) and the Kubernetes manifests (:mod:`stacks.manifests`) alike:

- **Hugging Face** (``hf``): the model's full id (``Plan.model.hf_id``), downloaded with ``huggingface_hub``'s
  ``snapshot_download`` from the engine's own image (vLLM, Ray LLM and TensorRT-LLM images ship it); a token for
  gated models comes from the Secret ``hf-token`` (key ``token``, optional: yours to create), mounted as a file
  (``HF_TOKEN_PATH``), never a value;
- **S3 / GCS / Azure Blob** (``s3`` / ``gcs`` / ``azure-blob``): ``model.artifact`` (or the stack's own model
  bucket, where you upload a checkpoint the engine cannot make itself), copied with the cloud's CLI through the
  workload identity of the pod's service account (IRSA, GKE Workload Identity, AKS workload identity);
- **bundled** (``bundled``): small files shipped in a ConfigMap of the plan (a builtin demo model);
- **user** (``user``): nothing mlplan can fetch (a local folder on an on-prem cluster, or a quantized
  checkpoint the spec does not name): the init container refuses to start and says what to set.

The weights land in an ``emptyDir`` volume ``models`` sized at least 1.1 x the weight bytes (safetensors,
config and tokenizer files; the engine reads the local copy). Sources: huggingface_hub ``snapshot_download``
(https://huggingface.co/docs/huggingface_hub/guides/download), ``aws s3 sync``, ``gcloud storage rsync``,
``az storage blob download-batch --auth-mode login`` with a federated token (AKS workload identity,
https://learn.microsoft.com/azure/aks/workload-identity-overview).

Pure and import-cheap.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Any, Literal

from planner.plan import Part, Plan

Obj = dict[str, Any]
SourceKind = Literal["hf", "s3", "gcs", "azure-blob", "bundled", "user"]

MODELS_VOLUME = "models"
MODELS_MOUNT = "/models"
#: Files a serving engine needs from a Hugging Face repository (weights as safetensors, configs, tokenizers,
#: chat templates); skips duplicate formats (``original/*.pth``, ``*.bin`` beside safetensors, GGUF).
HF_PATTERNS = ("*.json", "*.safetensors", "*.model", "*.txt", "*.tiktoken", "*.jinja", "*.py")
HF_TOKEN_SECRET = "hf-token"
HF_TOKEN_KEY = "token"
#: The token is read from a file (huggingface_hub's ``HF_TOKEN_PATH``), not an environment variable: a Secret
#: mounted as a file does not leak into the process environment (checkov CKV_K8S_35).
HF_TOKEN_DIR = "/var/run/secrets/huggingface"
#: Fetch images, pinned. Sources: the projects' registries (public.ecr.aws/aws-cli, gcr.io cloudsdktool,
#: mcr.microsoft.com/azure-cli).
FETCH_IMAGES = {
    "s3": "public.ecr.aws/aws-cli/aws-cli:2.22.35",
    "gcs": "gcr.io/google.com/cloudsdktool/google-cloud-cli:562.0.0-slim",
    "azure-blob": "mcr.microsoft.com/azure-cli:2.67.0",
}
_BLOB = re.compile(r"^https://([a-z0-9]{3,24})\.blob\.core\.windows\.net/([a-z0-9-]{3,63})(/.*)?$")


@dataclass(frozen=True)
class ModelSource:
    """Where one part's weights come from, where the engine reads them, and what fetches them."""

    kind: SourceKind
    uri: str = ""
    path: str = ""
    size_gib: int = 1
    why: str = ""
    upload: str = ""  # what you upload to ``uri`` first, when the source is the stack's own bucket

    @property
    def needs_identity(self) -> bool:
        """The fetch reads a cloud bucket with the pod's workload identity."""
        return self.kind in ("s3", "gcs", "azure-blob")


def model_dir(plan: Plan) -> str:
    """Where the engine reads the weights: ``/models/<model name>``."""
    return f"{MODELS_MOUNT}/{dir_name(plan)}"


def dir_name(plan: Plan) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", plan.model.name).strip("-.") or "model"


def volume_gib(part: Part) -> int:
    """The model volume the plan sized (``Part.model_volume_gib``: 1.1 x the weight bytes plus 1 GiB)."""
    return part.model_volume_gib


def scheme(uri: str) -> SourceKind | None:
    """The fetch kind of a URI: ``s3://``, ``gs://``, ``https://<account>.blob.core.windows.net/...``."""
    if uri.startswith("s3://"):
        return "s3"
    if uri.startswith("gs://"):
        return "gcs"
    if _BLOB.match(uri):
        return "azure-blob"
    return None


def _own_checkpoint(part: Part) -> bool:
    """The engine loads the model's own published weights (possibly quantizing them itself at load time)."""
    return part.engine is None or part.engine.checkpoint.startswith("the model's own weights")


def model_source(plan: Plan, part: Part, bucket_uri: str | None = None) -> ModelSource:
    """The weights of an LLM part (vLLM / TensorRT-LLM): the spec's artifact URI, else the Hugging Face id, else
    the stack's bucket ``bucket_uri`` (cloud parts; you upload there), else the user's to provide."""
    path, size = model_dir(plan), volume_gib(part)
    artifact = plan.model.artifact or ""
    kind = scheme(artifact) if artifact else None
    if kind is not None:
        return ModelSource(kind, artifact, path, size, f"model.artifact {artifact}")
    own = _own_checkpoint(part)
    if not artifact and own and plan.model.hf_id:
        return ModelSource("hf", plan.model.hf_id, path, size, f"Hugging Face {plan.model.hf_id}")
    what = (f"a {part.dtype} checkpoint of {plan.model.hf_id or plan.model.name}" if not own
            else f"the weights of {plan.model.name}" + (f" (model.artifact {artifact} is a local path)"
                                                       if artifact else ""))
    if bucket_uri:
        return ModelSource(scheme(bucket_uri) or "s3", bucket_uri, path, size,
                           f"{what}, uploaded to {bucket_uri} (the stack's model bucket)", upload=what)
    return ModelSource("user", "", path, size,
                       f"{what}: set model.artifact to an s3://, gs:// or https://<account>.blob.core.windows.net/ "
                       f"URI holding it (or to a Hugging Face id with hf_id) and re-run mlplan plan")


def _security(uid: int) -> Obj:
    return {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
            "runAsUser": uid, "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}


def fetch_container(source: ModelSource, *, engine_image: str, pull_policy: str, region: str | None,
                    uid: int, file_name: str | None = None) -> Obj:
    """The init container that fills the ``models`` volume from ``source`` (and refuses to start, saying why, for
    a source mlplan cannot fetch). ``file_name``: the source is one object, copied to ``<path>/<file_name>``
    (a Triton model's ONNX file); else a folder, synchronised into ``path``."""
    env: list[Obj] = [{"name": "HOME", "value": "/tmp"}, {"name": "MODEL_DIR", "value": source.path}]
    mounts: list[Obj] = [{"name": "tmp", "mountPath": "/tmp"}, {"name": MODELS_VOLUME, "mountPath": MODELS_MOUNT}]
    image = FETCH_IMAGES.get(source.kind, engine_image)
    if source.kind == "hf":
        env += [{"name": "MODEL_ID", "value": source.uri}, {"name": "HF_HOME", "value": "/tmp/hf"},
                {"name": "HF_HUB_DISABLE_TELEMETRY", "value": "1"},
                {"name": "HF_TOKEN_PATH", "value": f"{HF_TOKEN_DIR}/{HF_TOKEN_KEY}"}]
        mounts.append({"name": HF_TOKEN_SECRET, "mountPath": HF_TOKEN_DIR, "readOnly": True})
        script = ("import os; from huggingface_hub import snapshot_download; "
                  "snapshot_download(repo_id=os.environ['MODEL_ID'], local_dir=os.environ['MODEL_DIR'], "
                  f"allow_patterns={list(HF_PATTERNS)!r})")
        command = ["python3", "-c", script]
    elif source.kind == "s3":
        env += [{"name": "MODEL_URI", "value": source.uri}, {"name": "AWS_REGION", "value": region or "us-east-1"}]
        command = ["aws", "s3", "cp", "--only-show-errors", "$(MODEL_URI)", f"$(MODEL_DIR)/{file_name}"] \
            if file_name else ["aws", "s3", "sync", "--only-show-errors", "$(MODEL_URI)", "$(MODEL_DIR)"]
    elif source.kind == "gcs":
        env += [{"name": "MODEL_URI", "value": source.uri}, {"name": "CLOUDSDK_CONFIG", "value": "/tmp/gcloud"}]
        command = ["gcloud", "storage", "cp", "$(MODEL_URI)", f"$(MODEL_DIR)/{file_name}"] if file_name else \
            ["gcloud", "storage", "rsync", "--recursive", "$(MODEL_URI)", "$(MODEL_DIR)"]
    elif source.kind == "azure-blob":
        m = _BLOB.match(source.uri)
        assert m is not None
        account, container, prefix = m.group(1), m.group(2), (m.group(3) or "/").strip("/")
        env += [{"name": "MODEL_URI", "value": source.uri}, {"name": "AZURE_CONFIG_DIR", "value": "/tmp/azure"}]
        login = ('az login --service-principal -u "$AZURE_CLIENT_ID" -t "$AZURE_TENANT_ID" '
                 '--federated-token "$(cat "$AZURE_FEDERATED_TOKEN_FILE")" --allow-no-subscriptions --output none')
        where = f"--auth-mode login --account-name {shlex.quote(account)}"
        if file_name:
            script = (f"{login} && mkdir -p \"$MODEL_DIR\" && az storage blob download {where} "
                      f"--container-name {shlex.quote(container)} --name {shlex.quote(prefix)} "
                      f"--file \"$MODEL_DIR\"/{shlex.quote(file_name)} --output none")
        else:
            pattern = f"{prefix}/*" if prefix else "*"
            strip = f"/tmp/blob/{prefix}" if prefix else "/tmp/blob"
            script = (f"{login} && az storage blob download-batch {where} --source {shlex.quote(container)} "
                      f"--pattern {shlex.quote(pattern)} --destination /tmp/blob --output none && "
                      f"mkdir -p \"$MODEL_DIR\" && cp -R {shlex.quote(strip)}/. \"$MODEL_DIR\"/ && rm -rf /tmp/blob")
        command = ["sh", "-c", script]
    else:
        msg = f"mlplan: no model to fetch for this plan. {source.why}"
        command = ["sh", "-c", f"echo {shlex.quote(msg)} >&2; exit 1"]
    return {
        "name": "fetch-model", "image": image, "imagePullPolicy": pull_policy, "command": command, "env": env,
        "resources": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"cpu": "1", "memory": "2Gi"}},
        "securityContext": _security(uid), "volumeMounts": mounts,
    }


def model_volumes(source: ModelSource) -> list[Obj]:
    """The ``models`` volume (sized for the weights), the fetch container's ``tmp``, and the optional Hugging Face
    token Secret (a missing Secret leaves the directory empty: public models need none)."""
    vols: list[Obj] = [{"name": MODELS_VOLUME, "emptyDir": {"sizeLimit": f"{source.size_gib}Gi"}},
                       {"name": "tmp", "emptyDir": {"sizeLimit": "8Gi"}}]
    if source.kind == "hf":
        vols.append({"name": HF_TOKEN_SECRET, "secret": {"secretName": HF_TOKEN_SECRET, "optional": True,
                                                         "defaultMode": 0o440}})
    return vols


#: The container of the Azure model storage account (stacks.azure creates it).
AZURE_CONTAINER = "models"


def bucket_uri(plan: Plan, part: Part) -> str | None:
    """The prefix of the part's own model bucket, created by the part's stack (None where there is no stack
    bucket): ``s3://<bucket>/<model>`` (AWS), ``gs://<bucket>/<model>`` (GCP),
    ``https://<account>.blob.core.windows.net/models/<model>`` (Azure)."""
    prefix = dir_name(plan)
    if part.target in ("aws-eks", "aws-ec2") and part.names.bucket:
        return f"s3://{part.names.bucket}/{prefix}"
    if part.target == "gcp-gke" and part.names.bucket:
        return f"gs://{part.names.bucket}/{prefix}"
    if part.target == "azure-aks" and part.names.storage_account:
        return f"https://{part.names.storage_account}.blob.core.windows.net/{AZURE_CONTAINER}/{prefix}"
    return None
