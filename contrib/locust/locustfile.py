"""A ready locustfile: socketkit's verified echo and sum requests under Locust.

    pip install 'socketkit[locust]'
    socketkit serve echo sum --host 0.0.0.0          # on the server machine
    locust -f contrib/locust/locustfile.py --master \\
        --echo-host tcp://SERVER:10007 --sum-host tcp://SERVER:10100
    locust -f contrib/locust/locustfile.py --worker --master-host MASTER   # on each load machine

Hosts: tcp://HOST:PORT, udp://HOST:PORT or unix:/path. Pick one user with
``locust -f ... EchoUser``; both run by default, weighted 3 echo to 1 sum.
Echo size: ``--echo-size 1024``. Every byte of every reply is checked; a
wrong reply is a Locust failure naming what differed.
"""

from socketkit.load.locust import EchoUser, SumUser

EchoUser.weight = 3
SumUser.weight = 1

__all__ = ["EchoUser", "SumUser"]
