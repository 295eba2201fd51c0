using System.Text;
using System.Text.Json;

namespace Flint.Vmm.Config;

/// <summary>
/// Finds a key that appears twice in one JSON object. System.Text.Json keeps the last value of a repeated property
/// without a word; Firecracker's serde structs refuse the document ("duplicate field `x` at line L column C"), and a
/// configuration that says two things about one setting is a mistake worth stopping on.
/// </summary>
public static class DuplicateKeys
{
    /// <summary>serde's message for the first repeated key, or null when there is none (or the JSON is malformed:
    /// the deserializer reports that).</summary>
    public static string? Find(string json)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(json);
        var reader = new Utf8JsonReader(bytes, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Disallow, MaxDepth = 64 });
        var open = new Stack<HashSet<string>?>(); // one entry per open container; null for arrays
        try
        {
            while (reader.Read())
            {
                switch (reader.TokenType)
                {
                    case JsonTokenType.StartObject: open.Push(new HashSet<string>(StringComparer.Ordinal)); break;
                    case JsonTokenType.StartArray: open.Push(null); break;
                    case JsonTokenType.EndObject or JsonTokenType.EndArray: open.Pop(); break;
                    case JsonTokenType.PropertyName:
                        string key = reader.GetString()!;
                        if (!open.Peek()!.Add(key))
                            // The reader has consumed the colon too; serde stops at the key's closing quote.
                            return $"duplicate field `{key}`{At(bytes, (int)reader.TokenStartIndex + reader.ValueSpan.Length + 2)}";
                        break;
                }
            }
        }
        catch (JsonException) { }
        catch (InvalidOperationException) { }
        return null;
    }

    /// <summary>serde_json's position: the line, and the column of the last byte read (the key's closing quote).</summary>
    private static string At(byte[] bytes, int end)
    {
        int idx = Math.Max(0, Math.Min(end, bytes.Length) - 1);
        int line = 1, lineStart = 0;
        for (int i = 0; i < idx; i++) if (bytes[i] == '\n') { line++; lineStart = i + 1; }
        return $" at line {line} column {idx - lineStart + 1}";
    }
}
