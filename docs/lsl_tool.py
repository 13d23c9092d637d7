"""A plain LSL tool next to qudi: it sends the LSL stream 'pylsl sine' and plots 'qudi dummy'.

Only pylsl, numpy and matplotlib, nothing of qudi: this is how any LSL program sees qudi.

    python docs/lsl_tool.py            # then start qudi with cfg/instream_lsl.cfg

It creates its outlet first (cfg/instream_lsl.cfg's LslInStreamer looks for it when qudi
activates it), then waits up to a minute for qudi's outlet 'qudi dummy' and plots its last
five seconds, each channel with the label and unit qudi put into the stream's description.
"""

import sys

import matplotlib
import numpy as np
import pylsl

matplotlib.use("QtAgg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.animation import FuncAnimation  # noqa: E402

RATE, SECONDS = 250.0, 5.0

# an outlet, as any LSL device has one: a sine and a triangle wave, labels and units in desc
info = pylsl.StreamInfo("pylsl sine", "Test", 2, RATE, pylsl.cf_float32, "pylsl-sine-demo")
channels = info.desc().append_child("channels")
for label, unit in (("sine", "V"), ("triangle", "V")):
    channel = channels.append_child("channel")
    channel.append_child_value("label", label)
    channel.append_child_value("unit", unit)
outlet = pylsl.StreamOutlet(info)

# an inlet on qudi's stream
found = pylsl.resolve_byprop("name", "qudi dummy", 1, 60.0)
if not found:
    sys.exit("no LSL stream 'qudi dummy': start qudi with cfg/instream_lsl.cfg")
inlet = pylsl.StreamInlet(found[0], processing_flags=pylsl.proc_clocksync)
full = inlet.info(10.0)
labels, channel = [], full.desc().child("channels").child("channel")
while not channel.empty():
    labels.append(f"{channel.child_value('label')} ({channel.child_value('unit')})")
    channel = channel.next_sibling("channel")
n = full.channel_count()
keep = int(SECONDS * full.nominal_srate()) + 1
times, values = np.full(keep, np.nan), np.full((keep, n), np.nan)

figure, axes = plt.subplots(n, 1, sharex=True, figsize=(9, 7), squeeze=False)
figure.suptitle(
    f"plain pylsl inlet: '{full.name()}' from {full.hostname()}, {full.nominal_srate():g} Hz"
)
lines = [ax.plot([], [], lw=1)[0] for ax in axes[:, 0]]
for ax, label in zip(axes[:, 0], labels, strict=True):
    ax.set_ylabel(label)
axes[-1, 0].set_xlabel("LSL time - now (s)")
axes[-1, 0].set_xlim(-SECONDS, 0)
start, sent = pylsl.local_clock(), 0


def update(_frame):
    global sent, times, values
    due = int((pylsl.local_clock() - start) * RATE)  # push what the 'device' sampled
    if due > sent:
        k = np.arange(sent, due)
        phase = 2 * np.pi * 0.5 * k / RATE
        chunk = np.column_stack(
            [np.sin(phase), 0.6 * np.arcsin(np.sin(phase / 3)) * 2 / np.pi]
        ).astype(np.float32)
        outlet.push_chunk(chunk, start + (due - 1) / RATE)
        sent = due
    data, stamps = inlet.pull_chunk(timeout=0.0, max_samples=100_000, as_numpy=True)
    if len(stamps):
        times = np.concatenate([times, stamps])[-keep:]
        values = np.concatenate([values, data])[-keep:]
    now = pylsl.local_clock()
    for i, (ax, line) in enumerate(zip(axes[:, 0], lines, strict=True)):
        line.set_data(times - now, values[:, i])
        finite = values[np.isfinite(values[:, i]), i]
        if len(finite):
            low, high = finite.min(), finite.max()
            pad = 0.05 * (high - low or 1.0)
            ax.set_ylim(low - pad, high + pad)
    return lines


animation = FuncAnimation(figure, update, interval=50, cache_frame_data=False)
if len(sys.argv) > 1:  # "x,y,width,height": where the window goes (benchmarks/lsl_picture.py)
    x, y, w, h = (int(v) for v in sys.argv[1].split(","))
    figure.canvas.manager.window.setGeometry(x, y, w, h)
plt.show()
