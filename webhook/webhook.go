// Package webhook serves the sidecar injector: a controller-runtime
// admission handler that decodes a Pod, leaves skipped namespaces and pods
// that did not opt in alone, and answers the JSON patch that package
// inject's mutation amounts to, or denies a pod whose secrethub.io/
// annotations are invalid with the message naming the annotation.
//
// The operator serves it at Path (see internal/operator).
package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/version"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/secrethub/secrethub/webhook/inject"
)

// Path is where the pod mutating webhook is served.
const Path = "/mutate-v1-pod"

// Markers for controller-gen (make manifests writes config/webhook).
// +kubebuilder:webhook:path=/mutate-v1-pod,mutating=true,failurePolicy=fail,sideEffects=None,groups="",resources=pods,verbs=create,versions=v1,name=inject.secrethub.io,admissionReviewVersions=v1,timeoutSeconds=5

// Handler is the pod injector's admission.Handler.
type Handler struct {
	cfg     inject.Config
	decoder admission.Decoder
	log     *slog.Logger
}

// NewHandler returns the handler for cfg; log may be nil (slog.Default).
// It fails when cfg cannot inject any pod.
func NewHandler(cfg inject.Config, scheme *runtime.Scheme, log *slog.Logger) (*Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	return &Handler{cfg: cfg, decoder: admission.NewDecoder(scheme), log: log}, nil
}

// Webhook wraps h for a webhook server's Register(Path, ...).
func (h *Handler) Webhook() *admission.Webhook {
	return (&admission.Webhook{Handler: h}).WithRecoverPanic(true)
}

// Handle answers one admission request for a Pod.
func (h *Handler) Handle(ctx context.Context, req admission.Request) admission.Response {
	if req.Operation != admissionv1.Create {
		return admission.Allowed("not a create")
	}
	if h.cfg.Skipped(req.Namespace) {
		return admission.Allowed("namespace skipped")
	}
	pod := &corev1.Pod{}
	if err := h.decoder.Decode(req, pod); err != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("decode pod: %w", err))
	}
	// A pod created in a namespace may come without metadata.namespace;
	// the request's is authoritative (AgentTemplates are resolved in it).
	ns := pod.Namespace
	pod.Namespace = req.Namespace
	out, err := inject.Pod(pod, h.cfg)
	if err == nil && out != pod {
		out.Namespace = ns // the patch leaves metadata as it came
	}
	var ae *inject.AnnotationError
	switch {
	case errors.As(err, &ae):
		h.log.InfoContext(ctx, "webhook: pod denied", "namespace", req.Namespace, "pod", podName(req, pod), "annotation", ae.Key)
		return admission.Denied(ae.Error())
	case err != nil:
		h.log.ErrorContext(ctx, "webhook: injection failed", "namespace", req.Namespace, "pod", podName(req, pod), "error", err.Error())
		return admission.Errored(http.StatusInternalServerError, err)
	case out == pod:
		return admission.Allowed("")
	}
	raw, err := json.Marshal(out)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, fmt.Errorf("encode pod: %w", err))
	}
	h.log.DebugContext(ctx, "webhook: pod injected", "namespace", req.Namespace, "pod", podName(req, pod))
	return admission.PatchResponseFromRaw(req.Object.Raw, raw)
}

func podName(req admission.Request, pod *corev1.Pod) string {
	switch {
	case pod.Name != "":
		return pod.Name
	case req.Name != "":
		return req.Name
	}
	return pod.GenerateName + "*"
}

// NativeSidecarsSupported reports whether an API server of version v runs
// native sidecars (init containers with restartPolicy Always): Kubernetes
// 1.29 and later, where the feature is on by default.
func NativeSidecarsSupported(v *version.Info) bool {
	if v == nil {
		return false
	}
	major, err1 := strconv.Atoi(v.Major)
	// Minor may carry a suffix on managed clusters ("29+").
	minor, err2 := strconv.Atoi(strings.TrimRight(v.Minor, "+"))
	if err1 != nil || err2 != nil {
		return false
	}
	return major > 1 || (major == 1 && minor >= 29)
}
