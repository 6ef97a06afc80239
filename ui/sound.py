"""The alarm tone: QtMultimedia where it loads and finds an output, the system bell otherwise.

A station without speakers (or a kiosk PC whose audio stack is missing) must still alarm visibly and
must never crash for want of sound: the fallback beeps once a second through ``QApplication.beep()``
and says so once, so the guard knows the tone is not coming.
"""

from __future__ import annotations

import math
import struct
import tempfile
import wave
from pathlib import Path

from PyQt6.QtCore import QObject, QTimer, QUrl, pyqtSignal
from PyQt6.QtWidgets import QApplication

from station.qt_probe import apt_line, debian_package

TONE_HZ = (880.0, 660.0)  # a two-tone "hi-lo", recognisable as an alarm over a lobby's noise
TONE_S = 0.5


def write_tone(path: Path, rate: int = 22050) -> Path:
    """A 16-bit mono WAV of the two-tone alarm, half a second each."""
    frames = bytearray()
    for hz in TONE_HZ:
        n = int(rate * TONE_S)
        for k in range(n):
            fade = min(1.0, k / 200, (n - k) / 200)  # no clicks at the joins
            frames += struct.pack("<h", int(12000 * fade * math.sin(2 * math.pi * hz * k / rate)))
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(bytes(frames))
    return path


def no_audio_message(exc: ImportError) -> str:
    """What the status bar says when QtMultimedia cannot load: that the bell sounds instead, and why.

    Qt's error starts with the shared object that is missing ("libpulse.so.0: cannot open shared
    object file"); the technician who reads it needs the package that provides it, so the message
    ends with the install line (``apt-get install libpulse0``). The guard's part, "alarms use the
    system bell", comes first, and the whole stays short enough for the status bar at 1280 pixels.
    """
    first = str(exc).split(":")[0].strip()
    package = debian_package(first)
    if package is None:
        return f"No audio: alarms use the system bell ({first})"
    return f"No audio: alarms use the system bell ({apt_line([package])})"


class AlarmSound(QObject):
    """Plays the alarm tone in a loop until stopped; ``backend`` says which way it sounds."""

    fallback = pyqtSignal(str)

    def __init__(self, volume: float = 0.8, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.volume = float(volume)
        self.backend = "beep"
        self.fallback_message: str | None = None
        self.playing = False
        self._effect = None
        self._beeper = QTimer(self)
        self._beeper.setInterval(1000)
        self._beeper.timeout.connect(QApplication.beep)
        self._try_multimedia()

    def _try_multimedia(self) -> None:
        try:
            from PyQt6.QtMultimedia import QMediaDevices, QSoundEffect
        except ImportError as exc:
            self._fall_back(no_audio_message(exc))
            return
        if not QMediaDevices.audioOutputs():
            self._fall_back("No audio output device: alarms use the system bell")
            return
        tone = write_tone(Path(tempfile.gettempdir()) / "fever-station-alarm.wav")
        effect = QSoundEffect(self)
        effect.setSource(QUrl.fromLocalFile(str(tone)))
        effect.setLoopCount(QSoundEffect.Loop.Infinite.value)
        effect.setVolume(self.volume)
        self._effect, self.backend = effect, "QtMultimedia"

    def _fall_back(self, message: str) -> None:
        self.backend, self._effect = "beep", None
        if self.fallback_message is None:
            self.fallback_message = message
            self.fallback.emit(message)

    def play(self) -> None:
        if self.playing:
            return
        self.playing = True
        if self._effect is not None:
            self._effect.play()
        else:
            QApplication.beep()
            self._beeper.start()

    def stop(self) -> None:
        self.playing = False
        self._beeper.stop()
        if self._effect is not None:
            self._effect.stop()

    def set_volume(self, volume: float) -> None:
        self.volume = min(max(float(volume), 0.0), 1.0)
        if self._effect is not None:
            self._effect.setVolume(self.volume)
