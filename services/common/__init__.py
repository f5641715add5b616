"""What every service shares: settings, database, migrations, metrics, logging, serving."""
