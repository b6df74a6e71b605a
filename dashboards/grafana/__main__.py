import sys

from dashboards.grafana.generate import main

sys.exit(main())
