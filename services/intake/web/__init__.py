"""What people see in a browser or on paper: pages and printable documents served by the intake."""
