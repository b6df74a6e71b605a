import sys

from dashboards.grafana.export import main

sys.exit(main())
