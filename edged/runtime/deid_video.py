"""Video in and out for ``edged deid`` with PyAV: decoded frames with their timestamps, and an H.264 MP4 writer.

The writer encodes H.264 (``libx264``, ``yuv420p``; ``mpeg4`` only where an FFmpeg build lacks
libx264) at the input's size (an odd width or height gets its last column or row repeated, as
4:2:0 needs even sizes), with the input's time base and each frame's own presentation time, so
constant, fractional (30000/1001) and variable frame rates all play as recorded. It writes to a
hidden ``.STEM.partial.mp4`` beside the target and renames it only once the file is complete
(:meth:`H264Writer.finish`); :meth:`H264Writer.abort` removes it. Audio, when kept, is copied
packet for packet (no re-encoding) when browsers play its codec in MP4 (:data:`COPIED_AUDIO`), else
re-encoded as AAC at its timestamps (PCM from a camera's AVI, for one); container metadata (title, dates,
GPS location...) is copied only when asked. A frame the file says to show rotated (a phone's display matrix) is turned
upright before it is de-identified, as players show it, and written upright.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np

PREFERRED_CODECS = ("libx264", "mpeg4")
"""Encoders tried in order; PyAV's wheels bundle libx264."""
X264_OPTIONS = {"crf": "20", "preset": "fast"}
COPIED_AUDIO = frozenset({"aac", "mp3", "opus", "flac", "alac", "ac3", "eac3"})
"""Audio codecs copied as they are into MP4; others are re-encoded as AAC."""
MUXER_KEYS = frozenset({"major_brand", "minor_version", "compatible_brands", "encoder"})
"""Container metadata the muxer writes itself (never copied)."""


if TYPE_CHECKING:
    import av


class VideoError(Exception):
    """The file cannot be read or written as a video; one line (without the file name)."""


def pick_codec(names: tuple[str, ...] = PREFERRED_CODECS) -> str:
    """The first of ``names`` this FFmpeg build can encode with."""
    import av

    for name in names:
        try:
            av.codec.Codec(name, "w")
            return name
        except (av.codec.codec.UnknownCodecError, ValueError):
            continue
    raise VideoError(f"none of the video encoders {', '.join(names)} is available in this PyAV build")


def _ffmpeg_errors() -> tuple[type[Exception], ...]:
    import av

    return (av.FFmpegError,)


def upright(pixels: np.ndarray, rotation: float | None) -> np.ndarray:
    """The frame as a player shows it: ``rotation`` is the display matrix's counterclockwise angle in degrees."""
    k = round((rotation or 0) / 90) % 4
    return np.ascontiguousarray(np.rot90(pixels, k)) if k else pixels


class VideoSource:
    """The first video stream of a file (and its first audio stream) as decoded BGR frames."""

    def __init__(self, path: Path, fallback_fps: float) -> None:
        import av

        try:
            self.container = av.open(str(path))
        except av.FFmpegError as err:
            raise VideoError(f"cannot open it as a video ({err.strerror or err})") from None
        if not self.container.streams.video:
            self.container.close()
            raise VideoError("holds no video stream")
        self.video = self.container.streams.video[0]
        self.video.thread_type = "AUTO"
        self.audio = self.container.streams.audio[0] if self.container.streams.audio else None
        rate = self.video.average_rate or self.video.guessed_rate or self.video.base_rate
        self.rate: Fraction = (
            Fraction(rate) if rate and 0 < rate < 1000 else Fraction(fallback_fps).limit_denominator(1001)
        )
        self.time_base: Fraction = self.video.time_base or Fraction(1, 90000)
        self.size = (self.video.codec_context.width, self.video.codec_context.height)
        self.total = self.video.frames or None
        if self.total is None and self.container.duration:
            self.total = max(1, round(self.container.duration / 1_000_000 * float(self.rate)))
        self.metadata = dict(self.container.metadata)
        self.rotation = 0
        """The display rotation of the last frame read (counterclockwise degrees; frames come upright)."""

    def frames(self, on_audio: Callable[[av.Packet], None] | None = None) -> Iterator[tuple[np.ndarray, int]]:
        """Each frame as ``(BGR pixels, pts in :attr:`time_base`)`` in presentation order; audio packets go to
        ``on_audio``."""
        streams = [self.video] + ([self.audio] if on_audio is not None and self.audio is not None else [])
        step = max(1, round(1 / (self.rate * self.time_base))) if self.time_base else 1
        last: int | None = None
        try:
            for packet in self.container.demux(*streams):
                if packet.stream is not self.video:
                    if packet.dts is not None and on_audio is not None:
                        on_audio(packet)
                    continue
                for frame in cast("list[av.VideoFrame]", packet.decode()):  # a video stream's packet
                    pts = frame.pts if frame.pts is not None else (last + step if last is not None else 0)
                    if last is not None and pts <= last:
                        pts = last + 1
                    last = pts
                    self.rotation = round(frame.rotation or 0)
                    yield upright(frame.to_ndarray(format="bgr24"), self.rotation), pts
        except _ffmpeg_errors() as err:
            raise VideoError(f"cannot decode it ({getattr(err, 'strerror', None) or err})") from None

    def close(self) -> None:
        """Release the file."""
        self.container.close()


def even(n: int) -> int:
    """``n`` rounded up to even."""
    return n + (n & 1)


def pad_even(pixels: np.ndarray) -> np.ndarray:
    """The frame with its last column and row repeated where its width or height is odd."""
    h, w = pixels.shape[:2]
    if not (h & 1 or w & 1):
        return pixels
    return np.pad(pixels, ((0, h & 1), (0, w & 1), (0, 0)), mode="edge")


class H264Writer:
    """An MP4 file written under a temporary name and renamed when complete (see the module doc)."""

    def __init__(self, target: Path, source: VideoSource, keep_audio: bool, keep_metadata: bool) -> None:
        import av

        self.target = target
        self.partial = target.with_name(f".{target.stem}.partial.mp4")
        self.codec = pick_codec()
        target.parent.mkdir(parents=True, exist_ok=True)
        self.container = av.open(str(self.partial), "w", format="mp4", options={"movflags": "+faststart"})
        if keep_metadata:
            for key, value in source.metadata.items():
                if key.lower() not in MUXER_KEYS:
                    self.container.metadata[key] = value
        self.size = (even(source.size[0]), even(source.size[1]))
        self._rate, self._time_base = source.rate, source.time_base
        self._audio_template: av.AudioStream | None = None
        self._audio_copy = True
        self.audio_note = "none in the input"
        if source.audio is not None:
            name = source.audio.codec_context.name
            if not keep_audio:
                self.audio_note = f"dropped ({name}; --keep-audio keeps it)"
            else:
                self._audio_template = source.audio
                self._audio_copy = name in COPIED_AUDIO and name in self.container.supported_codecs
                self.audio_note = f"kept ({name})" if self._audio_copy else f"kept ({name} re-encoded as aac)"
        self.video: av.VideoStream | None = None
        self.audio: av.AudioStream | None = None
        self._pending: list[av.Packet] = []  # audio packets read before the first video frame
        self.frames = 0

    @property
    def keeps_audio(self) -> bool:
        """Whether the source's audio packets are wanted (:meth:`remux_audio`)."""
        return self._audio_template is not None

    def _open_streams(self, width: int, height: int) -> av.VideoStream:
        """Add the video stream (first frame's size, made even) and the kept audio stream, then write what waited;
        returns the video stream."""
        self.size = (even(width), even(height))
        video = cast("av.VideoStream", self.container.add_stream(self.codec, rate=self._rate))  # a video codec
        self.video = video
        video.width, video.height = self.size
        video.pix_fmt = "yuv420p"
        video.time_base = self._time_base
        video.codec_context.time_base = self._time_base
        if self.codec == "libx264":
            video.codec_context.options = dict(X264_OPTIONS)
        template = self._audio_template
        if template is not None and self._audio_copy:
            self.audio = self.container.add_stream_from_template(template)
        elif template is not None:
            channels = template.codec_context.layout.nb_channels
            self.audio = self.container.add_stream("aac", rate=template.codec_context.sample_rate or 48000,
                                                   layout="mono" if channels == 1 else "stereo")
        pending, self._pending = self._pending, []
        for packet in pending:
            self.remux_audio(packet)
        return video

    def write(self, pixels: np.ndarray, pts: int) -> None:
        """Encode one BGR frame shown at ``pts`` (in the source's time base)."""
        import av
        import cv2

        h, w = pixels.shape[:2]
        video = self.video
        if video is None:
            video = self._open_streams(w, h)
        elif (even(w), even(h)) != self.size:  # a mid-stream size change: fit it to the stream's size
            pixels = cv2.resize(pixels, self.size, interpolation=cv2.INTER_AREA)
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pad_even(pixels)), format="bgr24")
        frame.pts, frame.time_base = pts, self._time_base
        self.container.mux(video.encode(frame.reformat(format="yuv420p")))
        self.frames += 1

    def remux_audio(self, packet: av.Packet) -> None:
        """Copy one audio packet of the source (only when audio is kept; held until the video stream exists)."""
        if self.video is None:
            self._pending.append(packet)
        elif self.audio is not None and self._audio_copy:
            packet.stream = self.audio
            self.container.mux(packet)
        elif self.audio is not None:
            for frame in cast("list[av.AudioFrame]", packet.decode()):  # an audio stream's packet
                self.container.mux(self.audio.encode(frame))

    def finish(self) -> None:
        """Flush the encoder, close the file and give it its final name."""
        if self.video is None:
            raise VideoError("no frame was written")
        self.container.mux(self.video.encode())
        if self.audio is not None and not self._audio_copy:
            self.container.mux(self.audio.encode())
        self.container.close()
        os.replace(self.partial, self.target)

    def abort(self) -> None:
        """Close and remove the unfinished file."""
        try:
            self.container.close()
        except Exception:  # noqa: BLE001 - a half-written file may not close cleanly; it is removed anyway
            pass
        self.partial.unlink(missing_ok=True)
