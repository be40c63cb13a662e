// The NetworkPolicy controller of the local cluster, run as a host process.
//
// Adapted from sigs.k8s.io/kube-network-policies v0.8.0 cmd/main.go (Apache-2.0), which only reads an in-cluster
// config (it runs as a DaemonSet upstream). Changes: a --kubeconfig flag; SIGTERM (what cluster.sh's supervisor
// sends) stops it like SIGINT, so it deletes its nftables table on the way out; no AdminNetworkPolicy support (no
// CRDs on this cluster). Like upstream's, it leaves NRI on: it finds no NRI socket here (containerd 1.6) and learns
// Pod IPs from the API server. Upstream's --disable-nri is left out: v0.8.0 parses it without passing it on, and
// with NRI off its controller dereferences a nil plugin on the first packet from an address that is no Pod's.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sys/unix"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/component-base/logs"
	logsapi "k8s.io/component-base/logs/api/v1"
	"k8s.io/klog/v2"
	"sigs.k8s.io/kube-network-policies/pkg/networkpolicy"
)

func main() { os.Exit(run()) }

func run() int {
	var cfg networkpolicy.Config
	var kubeconfig, metricsBindAddress string
	flag.StringVar(&kubeconfig, "kubeconfig", "", "Path to the kubeconfig file (required)")
	flag.StringVar(&cfg.NodeName, "hostname-override", "", "Name of the Node whose Pods this process enforces policies for (required)")
	flag.StringVar(&metricsBindAddress, "metrics-bind-address", "127.0.0.1:9080", "host:port of the Prometheus metrics endpoint")
	flag.BoolVar(&cfg.FailOpen, "fail-open", false, "If set, accept packets while the controller is not running")
	flag.IntVar(&cfg.QueueID, "nfqueue-id", 100, "Number of the nfqueue used")
	flag.BoolVar(&cfg.NetfilterBug1766Fix, "netfilter-bug-1766-fix", true, "Process DNS packets on the PREROUTING hook (not needed with kernels 6.12+)")
	c := logsapi.NewLoggingConfiguration()
	logsapi.AddGoFlags(c, flag.CommandLine)
	flag.Parse()
	logs.InitLogs()
	if err := logsapi.ValidateAndApply(c, nil); err != nil {
		fmt.Fprintf(os.Stderr, "%v\n", err)
		return 1
	}
	if kubeconfig == "" || cfg.NodeName == "" {
		fmt.Fprintln(os.Stderr, "--kubeconfig and --hostname-override are required")
		return 2
	}
	if _, _, err := net.SplitHostPort(metricsBindAddress); err != nil {
		fmt.Fprintf(os.Stderr, "--metrics-bind-address %q: %v\n", metricsBindAddress, err)
		return 2
	}

	ctx, cancel := signal.NotifyContext(context.Background(), unix.SIGINT, unix.SIGTERM)
	defer cancel()
	logger := klog.FromContext(ctx)

	config, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		logger.Error(err, "reading the kubeconfig", "path", kubeconfig)
		return 1
	}
	config.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	config.ContentType = "application/vnd.kubernetes.protobuf"
	clientset, err := kubernetes.NewForConfig(config)
	if err != nil {
		logger.Error(err, "creating the client")
		return 1
	}
	informersFactory := informers.NewSharedInformerFactory(clientset, 0)

	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.Handler())
	go func() { utilruntime.HandleError(http.ListenAndServe(metricsBindAddress, mux)) }()

	controller, err := networkpolicy.NewController(clientset,
		informersFactory.Networking().V1().NetworkPolicies(),
		informersFactory.Core().V1().Namespaces(),
		informersFactory.Core().V1().Pods(),
		nil, nil, nil, nil, cfg)
	if err != nil {
		logger.Error(err, "creating the network policy controller")
		return 1
	}
	go func() {
		utilruntime.HandleError(controller.Run(ctx))
		cancel() // e.g. the nfqueue could not be opened: exit, and let the supervisor restart us
	}()
	informersFactory.Start(ctx.Done())
	<-ctx.Done()
	time.Sleep(5 * time.Second) // the controller deletes its nftables table as it returns
	return 0
}
