package intake

import (
	"encoding/json"
	"testing"
)

func BenchmarkZZBaseline(b *testing.B) {
	body := readFixture(b, "ghl-contact-create.json")
	b.Run("valid", func(b *testing.B) {
		for b.Loop() {
			json.Valid(body)
		}
	})
	b.Run("unmarshal-empty-struct", func(b *testing.B) {
		for b.Loop() {
			var s struct{}
			json.Unmarshal(body, &s)
		}
	})
	b.Run("unmarshal-ghl", func(b *testing.B) {
		for b.Loop() {
			var s ghlBody
			json.Unmarshal(body, &s)
		}
	})
	b.Run("storable", func(b *testing.B) {
		for b.Loop() {
			CheckStorableJSON(body)
		}
	})
}
