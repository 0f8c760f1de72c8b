"""A model as it runs on a device: NeMo's cache-aware streaming, chunk by chunk.

CTC models use NeMo's own `transcribe_simulate_cache_aware_streaming`, which serves CTC models only; for an
RNN-T decoder (the two-pass model's first pass) this is that loop: the encoder keeps its attention and
convolution caches, the greedy decoder its partial hypotheses. The encoder needs NeMo's streaming settings (`att_context_style: chunked_limited`, causal
convolutions); `att_context_size` sets the chunk and look-ahead.
"""

from __future__ import annotations

import torch


def transcribe_cache_aware(model, audio_files: list[str], batch_size: int = 16, online_normalization: bool = False) -> list[str]:
    """Greedy RNN-T (or CTC) transcripts of `audio_files` streamed through the encoder's caches.

    `online_normalization=False` normalises each file's features with its own statistics, as the offline
    model does (NeMo's default here); True uses running statistics per chunk, as a device without the
    whole utterance would.
    """
    from nemo.collections.asr.models import EncDecCTCModel
    from nemo.collections.asr.parts.mixins.streaming import StreamingEncoder
    from nemo.collections.asr.parts.utils.streaming_utils import CacheAwareStreamingAudioBuffer

    if not isinstance(model.encoder, StreamingEncoder) or model.cfg.encoder.get("att_context_style") != "chunked_limited":
        raise ValueError(f"{type(model).__name__}'s encoder is not set up for cache-aware streaming "
                         "(model.encoder.att_context_style=chunked_limited, conv_context_size=causal)")  # fmt: skip
    model.eval()
    model.encoder.setup_streaming_params()
    if isinstance(model, EncDecCTCModel):  # NeMo's own loop
        out = model.transcribe_simulate_cache_aware_streaming(audio_files, batch_size=batch_size,
                                                               online_normalization=online_normalization)  # fmt: skip
        return [h.text if hasattr(h, "text") else h for h in out]
    texts: list[str] = []
    for start in range(0, len(audio_files), batch_size):
        buffer = CacheAwareStreamingAudioBuffer(model=model, online_normalization=online_normalization)
        for path in audio_files[start : start + batch_size]:
            buffer.append_audio_file(str(path), stream_id=-1)
        cache = model.encoder.get_initial_cache_state(batch_size=len(buffer.streams_length))
        hyps = None
        for step, (chunk, lengths) in enumerate(buffer):
            with torch.inference_mode():
                _, hyps, *cache, _ = model.conformer_stream_step(
                    processed_signal=chunk, processed_signal_length=lengths, cache_last_channel=cache[0],
                    cache_last_time=cache[1], cache_last_channel_len=cache[2], keep_all_outputs=buffer.is_buffer_empty(),
                    previous_hypotheses=hyps, drop_extra_pre_encoded=model.encoder.streaming_cfg.drop_extra_pre_encoded if step else 0,
                    return_transcription=True,
                )  # fmt: skip
        texts += [h.text for h in hyps]
    return texts
