"""Inference on ONNX Runtime: the same network, the same weights, the same answers, faster.

PyTorch's CPU recurrence dispatches a dozen small ops per time step, which is most of the time
of a lone review. ONNX Runtime runs the whole recurrence (and the embedding, pooling and
classifier around it) inside one native call that releases the GIL. The graph is built here,
in memory, from the loaded `SentimentRNN` (nothing new is stored in a checkpoint), and it
reads lengths the way packing does: each review's recurrence stops at its own last token, so
padding never changes an answer. Training, gradients and explanations stay on PyTorch.

    ids (B, T) int64, lengths (B,) int64, embedding (V, E) float32  ->  logits (B, C) float32
"""

from __future__ import annotations

import hashlib
import os
import threading
from typing import Any

import numpy as np
import torch

from model.rnn import ModelConfig, SentimentRNN

OPSET = 17
# ONNX orders the gates of its recurrent ops differently from PyTorch: (PyTorch chunk index)
# for each ONNX chunk. GRU: torch r,z,n -> onnx z,r,h; LSTM: torch i,f,g,o -> onnx i,o,f,c.
GATE_ORDER = {"gru": (1, 0, 2), "lstm": (0, 3, 1, 2), "rnn": (0,)}
ONNX_OP = {"gru": "GRU", "lstm": "LSTM", "rnn": "RNN"}
# What this file builds: a cell or pooling SentimentRNN gains is refused here until it is built
# (tests/model/test_onnx_graph.py builds every one of model/rnn.py's choices).
BUILT = {"cell": tuple(ONNX_OP), "pooling": ("last", "max", "mean", "maxmean")}


class GraphError(ValueError):
    """The ONNX graph cannot stand in for the PyTorch model: a configuration it does not build,
    or answers that are not PyTorch's (model/predictor.py checks them when it loads)."""


def check_buildable(config: ModelConfig) -> None:
    """GraphError naming the option when the graph would not be the network `config` describes."""
    for option, built in BUILT.items():
        value = getattr(config, option)
        if value not in built:
            raise GraphError(
                f"model/onnx_graph.py builds no graph for {option}={value!r} (it builds "
                f"{', '.join(built)}): score this model with the torch backend (INFERENCE_BACKEND=torch)"
            )


def build_graph(model: SentimentRNN) -> Any:
    """The eval-mode network as an onnx.ModelProto (onnx is imported only when needed)."""
    from onnx import TensorProto, helper, numpy_helper

    config = model.config
    check_buildable(config)
    directions = 2 if config.bidirectional else 1
    nodes: list[Any] = []
    weights: dict[str, np.ndarray] = {}

    def node(op: str, inputs: list[str], outputs: list[str], **attrs: Any) -> None:
        nodes.append(helper.make_node(op, inputs, outputs, **attrs))

    def constant(name: str, value: np.ndarray) -> str:
        weights[name] = value
        return name

    node("Transpose", ["ids"], ["ids_tb"], perm=[1, 0])  # (T, B): transpose the ids, not vectors
    node("Gather", ["embedding", "ids_tb"], ["x0"])  # (T, B, E)
    node("Cast", ["lengths"], ["seq_lens"], to=TensorProto.INT32)
    layer_input = "x0"
    last = config.num_layers - 1
    for layer in range(config.num_layers):
        w, r, b = _layer_weights(model, layer, directions)
        prefix = f"l{layer}"
        node(
            ONNX_OP[config.cell],
            [layer_input, constant(f"{prefix}_W", w), constant(f"{prefix}_R", r),
             constant(f"{prefix}_B", b), "seq_lens"],
            [f"{prefix}_Y", f"{prefix}_Yh"],
            hidden_size=config.hidden_dim,
            direction="bidirectional" if directions == 2 else "forward",
            **({"linear_before_reset": 1} if config.cell == "gru" else {}),  # PyTorch's GRU form
        )  # Y (T, D, B, H), Yh (D, B, H)
        if layer < last:  # the next layer reads (T, B, D*H)
            node("Transpose", [f"{prefix}_Y"], [f"{prefix}_tbdh"], perm=[0, 2, 1, 3])
            shape = constant(f"{prefix}_shape", np.array([0, 0, -1], dtype=np.int64))
            node("Reshape", [f"{prefix}_tbdh", shape], [f"{prefix}_out"])
            layer_input = f"{prefix}_out"
    summary = _summary(node, constant, model, f"l{last}_Y", f"l{last}_Yh")
    node("Gemm", [summary, "classifier_W", "classifier_b"], ["logits"], transB=1)  # (B, C)
    weights["classifier_W"] = _array(model.classifier.weight)
    weights["classifier_b"] = _array(model.classifier.bias)

    graph = helper.make_graph(
        nodes,
        "sentiment_rnn",
        [
            helper.make_tensor_value_info("ids", TensorProto.INT64, ["B", "T"]),
            helper.make_tensor_value_info("lengths", TensorProto.INT64, ["B"]),
            # An input, not a constant: ORT reads the torch tensor's memory (no copy), which the
            # workers of a forked server share with the parent.
            helper.make_tensor_value_info(
                "embedding", TensorProto.FLOAT, [config.vocab_size, config.embed_dim]
            ),
        ],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["B", config.num_classes])],
        initializer=[numpy_helper.from_array(value, name) for name, value in weights.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def _summary(node: Any, constant: Any, model: SentimentRNN, outputs: str, last_states: str) -> str:
    """The pooling of SentimentRNN._pool / _final_states, straight from the top layer's
    outputs Y (T, D, B, H) and final states Yh (D, B, H) -> (B, S): reduced over time first,
    so no (B, T, ...) copy of the outputs is made."""
    int64 = np.int64
    pooling = model.config.pooling

    def per_review(state: str, name: str) -> str:  # (D, B, H) -> (B, D*H): forward, backward
        node("Transpose", [state], [f"{name}_bdh"], perm=[1, 0, 2])
        node("Reshape", [f"{name}_bdh", constant("flat", np.array([0, -1], dtype=int64))], [name])
        return name

    if pooling == "last":
        return per_review(last_states, "summary")
    # mask (T, 1, B, 1): step t is inside review b
    node("Shape", ["ids"], ["ids_shape"])
    node("Gather", ["ids_shape", constant("one", np.array(1, dtype=int64))], ["steps_n"])
    node("Range", [constant("zero", np.array(0, dtype=int64)), "steps_n",
                   constant("step", np.array(1, dtype=int64))], ["steps"])
    node("Unsqueeze", ["steps", constant("axes_t", np.array([1, 2, 3], dtype=int64))], ["steps_t"])
    node("Unsqueeze", ["lengths", constant("axes_b", np.array([0, 1, 3], dtype=int64))], ["lengths_b"])
    node("Less", ["steps_t", "lengths_b"], ["mask"])
    parts = []
    if pooling in ("max", "maxmean"):
        node("Where", ["mask", outputs, constant("minus_inf", np.array(-np.inf, dtype=np.float32))],
             ["masked_low"])
        node("ReduceMax", ["masked_low"], ["max_dbh"], axes=[0], keepdims=0)
        parts.append(per_review("max_dbh", "max"))
    if pooling in ("mean", "maxmean"):
        node("Where", ["mask", outputs, constant("zero_f", np.array(0.0, dtype=np.float32))],
             ["masked_zero"])
        node("ReduceSum", ["masked_zero", constant("axes0", np.array([0], dtype=int64))], ["sum_dbh"],
             keepdims=0)
        node("Unsqueeze", ["lengths", constant("axes1", np.array([1], dtype=int64))], ["lengths_b1"])
        node("Cast", ["lengths_b1"], ["lengths_f"], to=1)  # FLOAT
        node("Div", [per_review("sum_dbh", "sum"), "lengths_f"], ["mean"])
        parts.append("mean")
    if len(parts) == 1:
        return parts[0]
    node("Concat", parts, ["summary"], axis=1)
    return "summary"


def _layer_weights(
    model: SentimentRNN, layer: int, directions: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ONNX W (D, G*H, F), R (D, G*H, H), B (D, 2*G*H) of one stacked layer."""
    order = GATE_ORDER[model.config.cell]
    ws, rs, bs = [], [], []
    for suffix in ("", "_reverse")[:directions]:
        def get(name: str, suffix: str = suffix) -> np.ndarray:
            return _gates(_array(getattr(model.rnn, f"{name}_l{layer}{suffix}")), order)

        ws.append(get("weight_ih"))
        rs.append(get("weight_hh"))
        bs.append(np.concatenate([get("bias_ih"), get("bias_hh")]))
    return np.stack(ws), np.stack(rs), np.stack(bs)


def _gates(value: np.ndarray, order: tuple[int, ...]) -> np.ndarray:
    chunks = np.split(value, len(order), axis=0)
    return np.ascontiguousarray(np.concatenate([chunks[i] for i in order], axis=0))


def _array(tensor: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(tensor.detach().cpu().float().numpy())


class OnnxScorer:
    """Logits from an ONNX Runtime session of `model`, rebuilt when the weights change (an
    optimiser step or a load bumps their version) or the process forks (sessions do not
    survive a fork); one session per thread count, as torch's thread setting asks, so
    threads with different settings (a server's event loop and its inference thread) never
    make each other rebuild."""

    def __init__(self, model: SentimentRNN) -> None:
        self.model = model
        self._lock = threading.Lock()
        self._valid_for: tuple[Any, ...] | None = None  # (pid, parameter versions)
        self._sessions: dict[int, Any] = {}  # thread count -> session
        self._embedding: np.ndarray | None = None

    def logits(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """ids (B, T) int64 right-padded, lengths (B,) >= 1 -> logits (B, C)."""
        return _run(*self._current_session(), ids, lengths)

    def logits_once(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """`logits` from a one-thread session of its own, dropped after: for a check at load in a
        process that may fork later (a child cannot tear down an inherited session's thread
        pool: it hangs), leaving the sessions that serve to be built where they serve."""
        return _run(new_session(self.model, 1), _array(self.model.embedding.weight), ids, lengths)

    def digest(self) -> bytes:
        """What a session of this model runs, the graph and the embedding it is fed, as one
        sha256: equal digests score equally."""
        digest = hashlib.sha256(build_graph(self.model).SerializeToString())
        digest.update(_array(self.model.embedding.weight).data)  # its memory, not a copy
        return digest.digest()

    def _current_session(self) -> tuple[Any, np.ndarray]:
        threads = torch.get_num_threads()
        valid_for = (os.getpid(), tuple((id(p), p._version) for p in self.model.parameters()))
        with self._lock:
            if valid_for != self._valid_for:
                self._sessions.clear()
                self._embedding = _array(self.model.embedding.weight)
                self._valid_for = valid_for
            session = self._sessions.get(threads)
            if session is None:
                session = self._sessions[threads] = new_session(self.model, threads)
            assert self._embedding is not None
            return session, self._embedding


def _run(session: Any, embedding: np.ndarray, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    feed = {"ids": ids.numpy(), "lengths": lengths.numpy(), "embedding": embedding}
    (logits,) = session.run(None, feed)
    return torch.from_numpy(logits)


def preload() -> None:
    """Import onnx and ONNX Runtime now: a server does it before it forks, so its workers share
    the modules' memory instead of each importing its own copy."""
    import onnx  # noqa: F401
    import onnxruntime  # noqa: F401


def new_session(model: SentimentRNN, threads: int) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # errors only: its warnings are about providers we don't use
    return onnxruntime.InferenceSession(
        build_graph(model).SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
