// Package deploy holds the Prometheus and Alertmanager configuration; its test checks them with promtool and amtool.
package deploy
