package controllers

import (
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/secrethub/secrethub/api/v1alpha1"
)

func TestEngineLease(t *testing.T) {
	d := func(ct v1alpha1.AWSCredentialType, ttl, maxTTL time.Duration) *v1alpha1.DynamicRole {
		r := &v1alpha1.DynamicRole{Spec: v1alpha1.DynamicRoleSpec{Engine: v1alpha1.EngineAWS, AWS: &v1alpha1.AWSRole{CredentialType: ct}}}
		if ttl > 0 {
			r.Spec.DefaultTTL = &metav1.Duration{Duration: ttl}
		}
		if maxTTL > 0 {
			r.Spec.MaxTTL = &metav1.Duration{Duration: maxTTL}
		}
		return r
	}
	tests := map[string]struct {
		role *v1alpha1.DynamicRole
		want string // "" for no lease settings
	}{
		"iam_user, both":            {d(v1alpha1.AWSIAMUser, 30*time.Minute, 2*time.Hour), "1800/7200"},
		"iam_user, none: defaults":  {d(v1alpha1.AWSIAMUser, 0, 0), "3600/0"},
		"iam_user, short max only":  {d(v1alpha1.AWSIAMUser, 0, 20*time.Minute), "1200/1200"},
		"iam_user, long max only":   {d(v1alpha1.AWSIAMUser, 0, 5*time.Hour), "3600/18000"},
		"assumed_role: in the role": {d(v1alpha1.AWSAssumedRole, time.Hour, 0), ""},
		"postgresql":                {&v1alpha1.DynamicRole{Spec: v1alpha1.DynamicRoleSpec{Engine: v1alpha1.EnginePostgreSQL}}, ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			path, data, ok := EngineLease(tc.role)
			got := ""
			if ok {
				if path != "config/lease" {
					t.Errorf("path = %q", path)
				}
				got = fmt.Sprintf("%v/%v", data["lease"], data["lease_max"])
			}
			if got != tc.want {
				t.Errorf("lease = %q, want %q", got, tc.want)
			}
		})
	}
}
