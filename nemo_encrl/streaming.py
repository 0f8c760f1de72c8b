"""A model as it runs on a device: NeMo's cache-aware streaming, chunk by chunk.

NeMo's encoder `cache_aware_stream_step` under a greedy CTC or RNN-T decoder (the two-pass model's first
pass), one utterance at a time: the encoder keeps its attention and convolution caches, the RNN-T decoder
its partial hypotheses. The encoder needs NeMo's streaming settings
(`att_context_style: chunked_limited`, causal convolutions); `att_context_size` sets the chunk and look-ahead.
"""

from __future__ import annotations

import torch


def transcribe_cache_aware(model, audio_files: list[str], online_normalization: bool = False) -> list[str]:
    """Greedy RNN-T or CTC transcripts of `audio_files`, each streamed alone through the encoder's caches.

    Exactly the offline model's frames: one utterance at a time, as a device streams (NeMo's batched buffer
    keeps feeding a finished stream its pre-encode cache), and no frame past the offline encoder's last (the
    last chunk's padding can make one more).
    `online_normalization=False` normalises each file's features with its own statistics, as the offline
    model does (NeMo's default here); True uses running statistics per chunk, as a device without the
    whole utterance would.
    """
    from nemo.collections.asr.models import EncDecCTCModel
    from nemo.collections.asr.parts.mixins.streaming import StreamingEncoder
    from nemo.collections.asr.parts.preprocessing.segment import get_samples
    from nemo.collections.asr.parts.utils.streaming_utils import CacheAwareStreamingAudioBuffer

    if not isinstance(model.encoder, StreamingEncoder) or model.cfg.encoder.get("att_context_style") != "chunked_limited":
        raise ValueError(f"{type(model).__name__}'s encoder is not set up for cache-aware streaming "
                         "(model.encoder.att_context_style=chunked_limited, conv_context_size=causal)")  # fmt: skip
    model.eval()
    model.encoder.setup_streaming_params()
    ctc = isinstance(model, EncDecCTCModel)
    texts: list[str] = []
    for path in audio_files:
        buffer = CacheAwareStreamingAudioBuffer(model=model, online_normalization=online_normalization)
        with torch.inference_mode():
            features, length = buffer.preprocess_audio(get_samples(str(path), target_sr=model.cfg.preprocessor.sample_rate))
            _, frames = model.encoder.pre_encode(x=features.transpose(1, 2), lengths=length.long())  # as offline
        buffer.append_processed_signal(features)
        left, cache, hyps, log_probs = int(frames[0]), model.encoder.get_initial_cache_state(batch_size=1), None, []
        for step, (chunk, lengths) in enumerate(buffer):
            with torch.inference_mode():
                encoded, encoded_len, *cache = model.encoder.cache_aware_stream_step(
                    processed_signal=chunk, processed_signal_length=lengths, cache_last_channel=cache[0],
                    cache_last_time=cache[1], cache_last_channel_len=cache[2], keep_all_outputs=buffer.is_buffer_empty(),
                    drop_extra_pre_encoded=model.encoder.streaming_cfg.drop_extra_pre_encoded if step else 0)  # fmt: skip
                encoded_len = encoded_len.clamp(max=left)
                left -= int(encoded_len[0])
                if ctc:
                    log_probs.append(model.decoder(encoder_output=encoded)[0, : int(encoded_len[0])])
                else:
                    hyps = model.decoding.rnnt_decoder_predictions_tensor(
                        encoder_output=encoded, encoded_lengths=encoded_len, return_hypotheses=True, partial_hypotheses=hyps)  # fmt: skip
        if ctc:
            log_probs = torch.cat(log_probs)[None]
            hyps = model.decoding.ctc_decoder_predictions_tensor(log_probs, decoder_lengths=torch.tensor([log_probs.shape[1]]))
        texts.append(hyps[0] if isinstance(hyps[0], str) else hyps[0].text)
    return texts
