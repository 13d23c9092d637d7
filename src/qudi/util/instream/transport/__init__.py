"""The transports: how a stream reaches consumers in other processes and on other hosts.

Owner's side (the process that has the source):

* :mod:`.registry`: the hubs of this process, one per source, and a local consumer's place.
* :mod:`.share`: a consumer in another process's place, called over RPC (``StreamShare``).
* :mod:`.publisher`: the stream sent over ZeroMQ (``StreamPublisher``).

Consumer's side:

* :mod:`.remote`: a hub in another process on this host, read from shared memory
  (``RemoteHub``), and ``join_remote_stream``, which picks the path.
* :mod:`.subscribed`: a hub on another host, read over ZeroMQ (``SubscribedHub``).
* :mod:`.receiver`: the socket thread that refills a local ring from a publisher.
* :mod:`.subscriber`: the reader of that ring, across gaps (``StreamSubscriber``).
* :mod:`.gaps`: the gaps of a received stream.

Between the two: :mod:`.wire` (the ZeroMQ messages and their checks) and :mod:`.rpc` (the
plain-value calls between a share and its consumer). ``qudi.util.instream.network`` and
``qudi.util.instream.sharing`` re-export the public names.
"""
