"""ReaderConsumer: the reader lifecycle of a module that is one consumer of a shared hub.

``DataInStreamBuffer``, ``ImageStreamBuffer`` and ``ImageRoiStreamer`` each join a hub at
activation (a stream's or a camera's, their own way), open one reader on it under the module's
name, start and stop that reader under a state lock with the module ``'locked'`` while it
streams, and at deactivation close the reader (which stops the source if it was the last to
stream) and leave the hub. That lifecycle lives here once. A module mixes it in first::

    class DataInStreamBuffer(ReaderConsumer[JoinedHub, StreamReader], ..., DataInStreamInterface)

calls :meth:`~ReaderConsumer._open_consumer` with the hub it joined in ``on_activate`` and
:meth:`~ReaderConsumer._close_consumer` in ``on_deactivate``, and reads through
:meth:`~ReaderConsumer._active_reader`. ``_inactive_message`` is the error while it is not
active (``{name}``: the module's name).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

from qudi.util.instream.errors import StreamStoppedError

__all__ = ["ConsumerHub", "ConsumerReader", "ReaderConsumer"]


class ConsumerReader(Protocol):
    """What the mixin does with its reader (a ``HubReader``, or a reader wrapping one)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def close(self) -> None: ...


class ConsumerHub(Protocol):
    """What the mixin does with the hub it joined (a stream's or a camera's)."""

    def open_reader(self, name: str, *, allow_overwrite: bool = False) -> Any: ...

    def leave(self) -> None: ...


HubT = TypeVar("HubT", bound=ConsumerHub)
ReaderT = TypeVar("ReaderT", bound=ConsumerReader)


class ReaderConsumer(Generic[HubT, ReaderT]):
    """Mixin: one reader on one joined hub, from activation to deactivation; see the module
    docstring. The module provides ``module_name``, ``on_deactivate`` and
    ``_show_streaming`` (its interface's)."""

    _inactive_message: ClassVar[str] = "buffer '{name}' is not active: activate it first"

    if TYPE_CHECKING:  # the module's own: qudi's Base and its interface give them

        @property
        def module_name(self) -> str: ...

        def on_deactivate(self) -> None: ...

        def _show_streaming(self, streaming: bool) -> None: ...

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._hub: HubT | None = None
        self._reader: ReaderT | None = None
        self._state_lock = threading.Lock()  # held while the reader starts or stops

    def _open_consumer(
        self,
        hub: HubT,
        allow_overwrite: bool,
        wrap: Callable[[ReaderT], ReaderT] | None = None,
    ) -> None:
        """Keep ``hub`` and open this module's reader on it (through ``wrap``, if given: a
        filter chain, say). If that fails, ``on_deactivate`` leaves the hub again, so nothing
        half-done stays behind, and the error is raised."""
        self._hub = hub
        try:
            reader: ReaderT = hub.open_reader(self.module_name, allow_overwrite=allow_overwrite)
            self._reader = reader if wrap is None else wrap(reader)
        except BaseException:
            self.on_deactivate()
            raise

    def _close_consumer(self) -> None:
        """Close the reader (stopping the source, if it was the last running consumer) and
        leave the hub; harmless when nothing is open."""
        hub, reader = self._hub, self._reader
        self._hub = self._reader = None
        try:
            if reader is not None:
                reader.close()
        finally:
            if hub is not None:
                hub.leave()

    def _active_hub(self) -> HubT:
        """The hub joined at activation."""
        hub = self._hub
        if hub is None:
            raise StreamStoppedError(self._inactive_message.format(name=self.module_name))
        return hub

    def _active_reader(self) -> ReaderT:
        """This module's reader on its hub, opened at activation."""
        reader = self._reader
        if reader is None:
            raise StreamStoppedError(self._inactive_message.format(name=self.module_name))
        return reader

    # ----------------------------------------------------------------------- acquisition
    def start_stream(self) -> None:
        """Start this consumer (and the source if it is the first); harmless if running."""
        with self._state_lock:
            self._active_reader().start()
            self._show_streaming(True)

    def stop_stream(self) -> None:
        """Stop this consumer; the source stops when no consumer streams any more."""
        with self._state_lock:
            self._active_reader().stop()
            self._show_streaming(False)
