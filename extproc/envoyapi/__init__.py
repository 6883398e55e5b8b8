"""The only code that touches Envoy's ext_proc message classes (generated into `protos`)."""
