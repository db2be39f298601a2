"""MiniLM on ONNX Runtime: the same weights exported locally, fp32 or int8.

:class:`OnnxSentenceModel` runs a sentence-transformers model (Transformer, mean pooling,
normalize) through ONNX Runtime, which on a CPU is about twice torch's speed in fp32 and
four times in int8 (see ``MINILM_BACKENDS`` in :mod:`ai_agents.rag.embedders`). The graph
is exported with ``torch.onnx.export`` from the loaded weights and cached on disk
(:func:`onnx_cache_dir`); nothing is downloaded.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ai_agents.errors import ConfigurationError

MINILM_NAME = "all-MiniLM-L6-v2"
MINILM_DIMENSIONS = 384


def onnx_cache_dir() -> Path:
    """Where exported ONNX models are kept (``AI_AGENTS_MODEL_CACHE``, else ~/.cache)."""
    from ai_agents.settings import load_settings

    root = load_settings().model_cache
    if root:
        return Path(root)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ai_agents" / "onnx"


def _features(model: Any, texts: list[str]) -> Any:
    """The model's own tokenization (``preprocess`` since sentence-transformers 6)."""
    preprocess = getattr(model, "preprocess", None) or model.tokenize
    return preprocess(texts)


class OnnxSentenceModel:
    """A sentence-transformers model (Transformer + mean Pooling + Normalize) run by ONNX
    Runtime. The graph is exported locally from the loaded weights with
    ``torch.onnx.export`` (once; cached by the weights' digest), so nothing is downloaded
    and the fp32 vectors are the torch ones up to float rounding (cosine 1.000000). With
    ``int8`` the weight MatMuls are quantized dynamically (onnxruntime.quantization, int8
    per-channel weights; the first layer's feed-forward output projection stays fp32)."""

    def __init__(self, model: Any, threads: int, *, int8: bool = False) -> None:
        import onnxruntime as ort

        self.model = model
        path = self._exported(model)
        if int8:
            path = self._quantized(path)
        # One text per run (no padding, and a text's vector does not depend on what else is
        # encoded: dynamic int8 scales are per tensor) and one run per core in parallel:
        # faster on a CPU than batches with intra-op threads.
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.threads = threads
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="minilm-onnx")

    @staticmethod
    def _exported(model: Any) -> Path:
        import hashlib

        import torch

        bert = model[0].auto_model
        digest = hashlib.sha256()
        for name, tensor in sorted(bert.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().numpy().tobytes()[:4096])
            digest.update(str(tuple(tensor.shape)).encode())
        pooling = model[1].get_config_dict() if len(model) > 1 else {}
        digest.update(json.dumps(pooling, sort_keys=True, default=str).encode())
        path = onnx_cache_dir() / f"{MINILM_NAME}-{digest.hexdigest()[:16]}.onnx"
        if path.is_file():
            return path
        names = [type(m).__name__ for m in model]
        if names[:2] != ["Transformer", "Pooling"] or pooling.get("pooling_mode") != "mean":
            raise ConfigurationError(f"the ONNX backend supports mean pooling models, not {names}")

        class _Graph(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.bert = bert

            def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
                hidden = self.bert(
                    input_ids=input_ids,
                    attention_mask=attention_mask,
                    token_type_ids=token_type_ids,
                ).last_hidden_state
                mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                return torch.nn.functional.normalize(pooled, p=2.0, dim=1)

        sample = _features(model, ["an example", "a longer example sentence"])
        args = tuple(sample[k] for k in ("input_ids", "attention_mask", "token_type_ids"))
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        axes = {"batch": 0, "tokens": 1}
        # The exporter warns about its own deprecations and tracing; none of it concerns
        # the file made (checked against the PyTorch model), so it stays out of the logs.
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _Graph().eval(),
                args,
                str(partial),
                dynamo=False,
                input_names=["input_ids", "attention_mask", "token_type_ids"],
                output_names=["embedding"],
                dynamic_axes={
                    "input_ids": {v: k for k, v in axes.items()},
                    "attention_mask": {v: k for k, v in axes.items()},
                    "token_type_ids": {v: k for k, v in axes.items()},
                    "embedding": {0: "batch"},
                },
                opset_version=17,
            )
        os.replace(partial, path)
        return path

    @staticmethod
    def _quantized(source: Path) -> Path:
        path = source.with_name(source.stem + "-int8-l0ffn-fp32.onnx")
        if path.is_file():
            return path
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic

        # The first layer's feed-forward output projection (after GELU: outlier
        # activations) stays fp32: mean cosine to fp32 0.995 instead of 0.993 with every
        # Linear in int8, for 5% more time (every feed-forward output in fp32: 0.997, but
        # a third slower). bench/rag_ingest.py --cosine measures it.
        graph = onnx.load(str(source))
        keep_fp32 = [
            node.name
            for node in graph.graph.node
            if node.op_type == "MatMul" and "/layer.0/output/dense/" in node.name
        ]
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # quantize_dynamic logs advice on the root logger
        try:
            quantize_dynamic(
                str(source),
                str(partial),
                weight_type=QuantType.QInt8,
                per_channel=True,
                nodes_to_exclude=keep_fp32,
            )
        finally:
            root.setLevel(level)
        os.replace(partial, path)
        return path

    def encode(self, texts: Sequence[str]) -> Any:
        import numpy as np

        feeds = []
        for text in texts:  # the tokenizer is not shared across threads
            features = _features(self.model, [text])
            feeds.append({k: features[k].numpy().astype(np.int64) for k in self.inputs})
        out = np.zeros((len(texts), MINILM_DIMENSIONS), dtype=np.float32)

        def run(rows: range) -> None:
            for i in rows:
                out[i] = self.session.run(None, feeds[i])[0][0]

        workers = min(self.threads, len(texts))
        if workers <= 1:
            run(range(len(texts)))
        else:
            list(self.pool.map(run, [range(w, len(texts), workers) for w in range(workers)]))
        return out
